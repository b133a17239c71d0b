//! Helpers shared by the picture tests: a synthetic CT and a few string-level SVG readers (no XML dependency).
#![allow(dead_code)]

use acus_control::frames::{Ct, Point};
use acus_control::registration::{CtVolume, VolumeGeometry};
use nalgebra::Vector3;

/// Soft tissue, lesion and needle HU of the synthetic volume.
pub const TISSUE_HU: i16 = 40;
pub const LESION_HU: i16 = 100;
pub const NEEDLE_HU: i16 = 2000;

pub fn mm(x: f64, y: f64, z: f64) -> Point<Ct> {
    Point::xyz(x * 1e-3, y * 1e-3, z * 1e-3)
}

/// A 0.5 mm cube of tissue, 100 voxels a side centred on the origin, with a needle cylinder (radius `needle_r_m`)
/// from `from` to `tip` and a lesion sphere.
pub fn synthetic_ct(
    from: &Point<Ct>,
    tip: &Point<Ct>,
    needle_r_m: f64,
    lesion: &Point<Ct>,
    lesion_r_m: f64,
) -> CtVolume {
    let n = 100usize;
    let s = 0.5e-3;
    let origin = Point::xyz(-24.75e-3, -24.75e-3, -24.75e-3);
    let g = VolumeGeometry::axial(origin, Vector3::new(s, s, s), s);
    let (a, b) = (from.coords.coords, tip.coords.coords);
    let ab = b - a;
    let mut hu = vec![TISSUE_HU; n * n * n];
    for k in 0..n {
        for j in 0..n {
            for i in 0..n {
                let p = g
                    .index_to_point(&Vector3::new(i as f64, j as f64, k as f64))
                    .coords
                    .coords;
                let t = (p - a).dot(&ab) / ab.norm_squared();
                let idx = (k * n + j) * n + i;
                if (p - lesion.coords.coords).norm() <= lesion_r_m {
                    hu[idx] = LESION_HU;
                }
                if (0.0..=1.0).contains(&t) && (p - a - ab * t).norm() <= needle_r_m {
                    hu[idx] = NEEDLE_HU;
                }
            }
        }
    }
    CtVolume::new([n, n, n], hu, g).expect("valid synthetic volume")
}

/// The start tag of the element with `id="…"` (up to its closing `>`).
pub fn element_by_id<'a>(svg: &'a str, id: &str) -> Option<&'a str> {
    let at = svg.find(&format!(r#"id="{id}""#))?;
    let start = svg[..at].rfind('<')?;
    let end = at + svg[at..].find('>')?;
    Some(&svg[start..=end])
}

/// Every start tag carrying `class="…"`.
pub fn elements_by_class<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
    let key = format!(r#"class="{class}""#);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = svg[from..].find(&key) {
        let at = from + rel;
        let start = svg[..at].rfind('<').unwrap_or(0);
        let end = at + svg[at..].find('>').unwrap_or(0);
        out.push(&svg[start..=end]);
        from = end;
    }
    out
}

/// A numeric attribute of a tag.
pub fn attr_f64(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} of {tag}: {e}"))
}

/// A string attribute of a tag (matched as ` name="`, so `x` does not match `x1`).
pub fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(r#" {name}=""#);
    let at = tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len();
    let end = tag[at..].find('"').expect("closing quote");
    &tag[at..at + end]
}

/// Checks that every start tag has its end tag in order (self-closing ones excepted): a cheap well-formedness check
/// that catches an unclosed group or a stray `<` in text.
pub fn assert_tags_balanced(svg: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(lt) = rest.find('<') {
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            stack.push(name);
        }
        rest = &rest[gt + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// The document references nothing outside itself and runs nothing.
pub fn assert_self_contained(svg: &str) {
    let lower = svg.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "script element");
    assert!(!lower.contains("javascript:"), "javascript URI");
    // No event-handler attribute (onload=, onclick=, …) in any tag.
    for tag in lower.split('<').skip(1).map(|t| t.split('>').next().unwrap_or("")) {
        for word in tag.split_whitespace().skip(1) {
            assert!(
                !(word.starts_with("on") && word.contains('=')),
                "event handler in <{tag}>"
            );
        }
    }
    let http: Vec<_> = lower.match_indices("http").collect();
    assert_eq!(http.len(), 1, "only the SVG namespace may name http: {http:?}");
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert!(!lower.contains("xlink"), "no xlink namespace (SVG 2 href)");
    for href in svg.match_indices("href=\"") {
        let value = &svg[href.0 + 6..];
        assert!(
            value.starts_with("data:"),
            "external href: {}",
            &value[..value.len().min(40)]
        );
    }
}
