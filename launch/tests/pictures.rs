//! The pictures of a simulated biopsy (issue 16, acceptance 3): one per check scan beside its series, named in the
//! summary, and the tip drawn where the check scan found it — read from the SVG alone (its tip marker and the plane
//! geometry it states), compared with the tip the procedure reported on `/diagnostics`, and the needle in the embedded
//! slice ends there. Also the registration picture of the planning scan.

use std::path::{Path, PathBuf};

use acus_launch::run::{run, SimOptions};
use acus_launch::system::Drives;
use acus_nodes::testing::isolated;
use acus_nodes::wire::{PICTURE_KEY, TIP_CT_KEY};
use base64::Engine as _;
use nalgebra::Vector3;

/// The start tag of the element with `id`.
fn element<'a>(svg: &'a str, id: &str) -> &'a str {
    let at = svg.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("no #{id}"));
    let start = svg[..at].rfind('<').unwrap();
    &svg[start..at + svg[at..].find('>').unwrap() + 1]
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(r#" {name}=""#);
    let at = tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len();
    &tag[at..at + tag[at..].find('"').unwrap()]
}

/// The picture's plane, from its `<desc id="plane">`: maps SVG coordinates to LPS mm.
struct Plane {
    corner: Vector3<f64>,
    u: Vector3<f64>,
    v: Vector3<f64>,
    pixel_mm: f64,
    offset: (f64, f64),
}

impl Plane {
    fn parse(svg: &str) -> Self {
        let tag = element(svg, "plane");
        let text = &svg[svg.find(tag).unwrap() + tag.len()..];
        let text = &text[..text.find("</desc>").unwrap()];
        let field = |name: &str| -> Vec<f64> {
            let v = text
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            v.split(',').map(|x| x.parse().unwrap()).collect()
        };
        let vec3 = |v: Vec<f64>| Vector3::new(v[0], v[1], v[2]);
        let offset = field("offset");
        Self {
            corner: vec3(field("corner_lps_mm")),
            u: vec3(field("u")),
            v: vec3(field("v")),
            pixel_mm: field("pixel_mm")[0],
            offset: (offset[0], offset[1]),
        }
    }

    fn to_lps_mm(&self, x: f64, y: f64) -> Vector3<f64> {
        self.corner + self.u * ((x - self.offset.0) * self.pixel_mm) + self.v * ((y - self.offset.1) * self.pixel_mm)
    }
}

/// The embedded slice: (width, grey pixels).
fn slice(svg: &str) -> (usize, Vec<u8>) {
    let href = attr(element(svg, "slice"), "href");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(href.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    (info.width as usize, buf)
}

#[test]
fn every_check_scan_has_a_picture_with_the_tip_drawn_where_it_was_found() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let options = SimOptions {
            config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml")),
            out: out.path().to_path_buf(),
            realtime: false,
            // Seed 9 of the breathing world finished in 10 of 10 runs.
            seed: Some(9),
            world: Some("realistic".into()),
            drives: Drives::InProcess,
            record: false,
            pedal: None,
            igtl: None,
            external_registration: false,
            tracker: None,
        };
        let summary = run(&options, |_| {}).unwrap();
        println!("{}", summary.text);
        assert!(!summary.log.check_scans.is_empty());
        for (i, check) in summary.log.check_scans.iter().enumerate() {
            let path = Path::new(
                check
                    .get(PICTURE_KEY)
                    .unwrap_or_else(|| panic!("check scan {}: no picture", i + 1)),
            );
            assert!(
                summary.text.contains(&format!("picture {}", path.display())),
                "the summary names it"
            );
            let svg = std::fs::read_to_string(path).unwrap();
            assert!(!svg.contains("<script"));
            // The tip the procedure reported (LPS mm, three decimals) …
            let reported: Vec<f64> = check[TIP_CT_KEY]
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let reported = Vector3::new(reported[0], reported[1], reported[2]);
            // … is where the picture draws it (the marker's position is printed to 1/100 pixel = 2.5 µm).
            let plane = Plane::parse(&svg);
            let tip = element(&svg, "tip");
            let (x, y) = (
                attr(tip, "cx").parse::<f64>().unwrap(),
                attr(tip, "cy").parse::<f64>().unwrap(),
            );
            let drawn = plane.to_lps_mm(x, y);
            let off = (drawn - reported).norm();
            println!("check scan {}: tip drawn {off:.4} mm from the tip reported", i + 1);
            assert!(
                off < 0.01,
                "check scan {}: tip drawn {off:.4} mm from where it was found",
                i + 1
            );
            // And the needle in the image ends there: metal 1 mm behind the drawn tip along the needle drawn, not
            // metal 2 mm beyond it (grey 255 = 400 HU; the needle is thousands of HU, soft tissue tens).
            let (width, grey) = slice(&svg);
            let needle = element(&svg, "needle-found");
            let back = (
                attr(needle, "x2").parse::<f64>().unwrap() - x,
                attr(needle, "y2").parse::<f64>().unwrap() - y,
            );
            let len = back.0.hypot(back.1);
            let along = |mm: f64| {
                let px = mm / plane.pixel_mm;
                let (c, r) = (
                    x + back.0 / len * px - plane.offset.0,
                    y + back.1 / len * px - plane.offset.1,
                );
                grey[r.floor() as usize * width + c.floor() as usize]
            };
            let (behind, beyond) = (along(1.0), along(-2.0));
            println!(
                "check scan {}: grey {behind} 1 mm behind the drawn tip, {beyond} 2 mm beyond",
                i + 1
            );
            assert!(
                behind >= 250,
                "check scan {}: no metal 1 mm behind the drawn tip ({behind})",
                i + 1
            );
            assert!(
                beyond < 200,
                "check scan {}: metal 2 mm beyond the drawn tip ({beyond})",
                i + 1
            );
        }
        // The registration picture of the planning scan: one marker per fiducial in each projection.
        let planning = out.path().join("scans").read_dir().unwrap().find_map(|e| {
            let p = e.unwrap().path();
            p.to_string_lossy().ends_with(".registration.svg").then_some(p)
        });
        let svg = std::fs::read_to_string(planning.expect("a registration picture")).unwrap();
        let found = svg.matches(r#"class="found""#).count();
        let fiducials: usize = summary.log.registration["fiducials matched"].parse().unwrap();
        assert_eq!(found, 2 * fiducials);
    });
}
