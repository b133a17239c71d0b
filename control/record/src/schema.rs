//! ros2msg schema text for an MCAP channel, assembled from the `.msg` files of the ament index as rosbag2 does: the type's
//! own definition, then each nested type once, after a line of 80 `=` and a `MSG: pkg/msg/Type` line.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::SchemaError;

/// Types built into the IDL: no definition to append.
const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
    "uint64", "string", "wstring",
];

const DELIMITER: &str = "================================================================================\n";

/// A message type name, `pkg/msg/Type`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MsgType {
    pub package: String,
    pub name: String,
}

impl MsgType {
    /// Parse `pkg/msg/Type` or `pkg/Type`.
    pub fn parse(full: &str) -> Result<Self, SchemaError> {
        let parts: Vec<&str> = full.split('/').collect();
        let (package, name) = match parts.as_slice() {
            [p, "msg", n] | [p, n] if !p.is_empty() && !n.is_empty() => (*p, *n),
            _ => return Err(SchemaError::BadTypeName(full.to_owned())),
        };
        Ok(Self {
            package: package.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for MsgType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/msg/{}", self.package, self.name)
    }
}

/// The non-primitive field types a `.msg` text refers to, resolved against `package` (a bare name is a type of the same
/// package), in order of first use.
pub fn dependencies(package: &str, text: &str) -> Result<Vec<MsgType>, SchemaError> {
    let mut out: Vec<MsgType> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(field_type) = line.split_whitespace().next() else {
            continue;
        };
        // Constants (`TYPE NAME=VALUE`) are primitive; arrays `T[]`, `T[N]`, `T[<=N]`; bounded strings `string<=N`.
        let base = field_type.split('[').next().unwrap_or(field_type);
        let base = base.split("<=").next().unwrap_or(base);
        if PRIMITIVES.contains(&base) {
            continue;
        }
        let dep = if base.contains('/') {
            MsgType::parse(base)?
        } else {
            MsgType {
                package: package.to_owned(),
                name: base.to_owned(),
            }
        };
        if !out.contains(&dep) {
            out.push(dep);
        }
    }
    Ok(out)
}

/// Assemble the schema of `root` from definitions that `load` returns (pure: the file system is in [`AmentIndex`]).
pub fn assemble(root: &MsgType, load: impl Fn(&MsgType) -> Result<String, SchemaError>) -> Result<String, SchemaError> {
    let root_text = load(root)?;
    let mut seen = BTreeSet::from([root.clone()]);
    let mut todo: Vec<MsgType> = dependencies(&root.package, &root_text)?;
    todo.reverse();
    let mut out = root_text;
    while let Some(dep) = todo.pop() {
        if !seen.insert(dep.clone()) {
            continue;
        }
        let text = load(&dep)?;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(DELIMITER);
        out.push_str(&format!("MSG: {dep}\n"));
        out.push_str(&text);
        // Depth first, in field order, as rosbag2 lists them.
        let mut nested = dependencies(&dep.package, &text)?;
        nested.reverse();
        todo.extend(nested);
    }
    Ok(out)
}

/// The `share/<pkg>/msg/<Type>.msg` files of the prefixes in `AMENT_PREFIX_PATH` (the project venv).
#[derive(Clone, Debug)]
pub struct AmentIndex {
    prefixes: Vec<PathBuf>,
}

impl AmentIndex {
    /// Prefixes from `AMENT_PREFIX_PATH` (`:`-separated); when it is unset (the `acus` binary run directly, outside
    /// cargo and a sourced ROS set-up), the prefix it was built against: the same project venv its RPATH finds the ROS
    /// libraries in (.cargo/config.toml).
    pub fn from_env() -> Result<Self, SchemaError> {
        let var = std::env::var_os("AMENT_PREFIX_PATH")
            .or_else(|| option_env!("AMENT_PREFIX_PATH").map(Into::into))
            .ok_or(SchemaError::NoAmentPrefix)?;
        Ok(Self::new(std::env::split_paths(&var).collect()))
    }

    pub fn new(prefixes: Vec<PathBuf>) -> Self {
        Self { prefixes }
    }

    /// The text of one `.msg` file.
    pub fn load(&self, t: &MsgType) -> Result<String, SchemaError> {
        for prefix in &self.prefixes {
            let path = prefix
                .join("share")
                .join(&t.package)
                .join("msg")
                .join(format!("{}.msg", t.name));
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SchemaError::Read { path, source }),
            }
        }
        Err(SchemaError::NotFound {
            msg_type: t.to_string(),
            prefixes: self.prefixes.clone(),
        })
    }

    /// The assembled schema of `full` (`pkg/msg/Type`).
    pub fn schema(&self, full: &str) -> Result<String, SchemaError> {
        assemble(&MsgType::parse(full)?, |t| self.load(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake() -> HashMap<String, String> {
        HashMap::from([
            (
                "a/msg/Top".into(),
                "# comment Other\na/Mid mid\nMid[] mids\nb/msg/Leaf[<=3] leaves\nstring<=5 s\n".into(),
            ),
            ("a/msg/Mid".into(), "b/Leaf leaf\nint32 X=3 # c/Nope\n".into()),
            ("b/msg/Leaf".into(), "float64 v".into()),
        ])
    }

    #[test]
    fn nested_types_appear_once_after_delimiters() {
        let defs = fake();
        let load = |t: &MsgType| {
            defs.get(&t.to_string())
                .cloned()
                .ok_or(SchemaError::BadTypeName(t.to_string()))
        };
        let text = assemble(&MsgType::parse("a/msg/Top").unwrap(), load).unwrap();
        let expected = format!(
            "{}{DELIMITER}MSG: a/msg/Mid\n{}{DELIMITER}MSG: b/msg/Leaf\nfloat64 v",
            defs["a/msg/Top"], defs["a/msg/Mid"]
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(MsgType::parse("String").is_err());
        assert!(MsgType::parse("a/srv/B/C").is_err());
        assert_eq!(
            MsgType::parse("std_msgs/String").unwrap().to_string(),
            "std_msgs/msg/String"
        );
    }

    #[test]
    fn real_diagnostic_array_from_the_venv() {
        let Some(venv) = std::env::var_os("ACUS_VENV") else {
            panic!("ACUS_VENV unset: test through cargo after launch/setup.sh");
        };
        let index = AmentIndex::new(vec![PathBuf::from(venv)]);
        let text = index.schema("diagnostic_msgs/msg/DiagnosticArray").unwrap();
        for dep in [
            "std_msgs/msg/Header",
            "builtin_interfaces/msg/Time",
            "diagnostic_msgs/msg/DiagnosticStatus",
            "diagnostic_msgs/msg/KeyValue",
        ] {
            assert_eq!(
                text.matches(&format!("MSG: {dep}\n")).count(),
                1,
                "{dep} once in:\n{text}"
            );
        }
        assert!(matches!(
            index.schema("std_msgs/msg/Nope"),
            Err(SchemaError::NotFound { .. })
        ));
    }
}
