//! `start_pose` by joint name. A bare list of six numbers is mapped to the joints by position alone, so a file written
//! for another joint order (or with one value missing and one added) would power the drives up somewhere else without a
//! word. Named, in chain order (the order of the drive file and of `/joint_states`), every such mistake is refused by
//! name: an unknown joint, a joint given twice, a joint missing, or the joints out of order.

use std::fmt;

use acus_control::kinematics::Joint;
use serde::de::{Error, MapAccess, Visitor};
use serde::Deserializer;

/// The joint names in chain order, for messages.
fn chain_order() -> String {
    Joint::ALL.map(|j| j.name()).join(", ")
}

/// Deserializes `{x_joint: …, y_joint: …, …}` (all six, chain order) into the positions in chain order. The messages
/// carry no field name: serde_yaml prefixes the path (`start_pose: …`).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 6], D::Error> {
    d.deserialize_map(Named)
}

struct Named;

impl<'de> Visitor<'de> for Named {
    type Value = [f64; 6];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a map of joint name to position, in chain order ({})", chain_order())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Read the whole map first: whether `z_joint` right after `x_joint` is misordered or `y_joint` missing is only
        // known at the end.
        let mut entries: Vec<(Joint, f64)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let Some(joint) = Joint::ALL.into_iter().find(|j| j.name() == name) else {
                return Err(A::Error::custom(format!(
                    "unknown joint `{name}`; the joints are {}",
                    chain_order()
                )));
            };
            if entries.iter().any(|(j, _)| *j == joint) {
                return Err(A::Error::custom(format!("joint `{name}` is given twice")));
            }
            let value: f64 = map.next_value()?;
            entries.push((joint, value));
        }
        if let Some(missing) = Joint::ALL.into_iter().find(|j| !entries.iter().any(|(e, _)| e == j)) {
            return Err(A::Error::custom(format!(
                "joint `{}` is missing; give all six: {}",
                missing.name(),
                chain_order()
            )));
        }
        let mut q = [0.0; 6];
        for (i, (joint, value)) in entries.into_iter().enumerate() {
            let expected = Joint::ALL[i];
            if joint != expected {
                return Err(A::Error::custom(format!(
                    "joint `{}` is where `{}` belongs: give the joints in chain order ({})",
                    joint.name(),
                    expected.name(),
                    chain_order()
                )));
            }
            q[i] = value;
        }
        Ok(q)
    }
}
