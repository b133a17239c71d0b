//! Scene description: solid shapes with HU values in the CT frame (metres), painted in order.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::registration::FiducialModel;
use nalgebra::{Point3, Vector3};

/// Air.
pub const AIR_HU: f64 = -1000.0;
/// Fat.
pub const FAT_HU: f64 = -100.0;
/// Soft tissue (muscle, liver).
pub const SOFT_TISSUE_HU: f64 = 40.0;
/// Fiducial spheres: a dense ceramic, bright but below the 3071 HU ceiling of 12-bit scanners so nothing clips.
pub const FIDUCIAL_HU: f64 = 2500.0;

/// A solid. Each shape has a level function `h` (inside iff `h ≤ 1`) with a known Lipschitz bound `L`, so a voxel whose
/// centre has `|h − 1| > L·r` cannot be crossed by the surface within radius `r` and needs no supersampling.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A ball.
    Sphere {
        /// Centre.
        center: Point3<f64>,
        /// Radius, metres.
        radius: f64,
    },
    /// An axis-aligned ellipsoid.
    Ellipsoid {
        /// Centre.
        center: Point3<f64>,
        /// Semi-axes along x, y, z, metres.
        semi_axes: Vector3<f64>,
    },
    /// An elliptic cylinder along z (the patient's long axis), flat ends.
    EllipticCylinder {
        /// Centre.
        center: Point3<f64>,
        /// Semi-axes along x and y, metres.
        semi_x: f64,
        /// Semi-axis along y, metres.
        semi_y: f64,
        /// Half of the length along z, metres.
        half_length: f64,
    },
    /// A segment with a radius (a needle shaft with a rounded tip).
    Capsule {
        /// One end.
        a: Point3<f64>,
        /// Other end.
        b: Point3<f64>,
        /// Radius, metres.
        radius: f64,
    },
}

impl Shape {
    /// Level value: ≤ 1 inside.
    pub fn level(&self, p: &Point3<f64>) -> f64 {
        match self {
            Shape::Sphere { center, radius } => (p - center).norm() / radius,
            Shape::Ellipsoid { center, semi_axes } => (p - center).component_div(semi_axes).norm(),
            Shape::EllipticCylinder {
                center, half_length, ..
            } => self.level_xy(p).max((p.z - center.z).abs() / half_length),
            Shape::Capsule { a, b, radius } => {
                let ab = b - a;
                let t = ((p - a).dot(&ab) / ab.norm_squared().max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
                (p - (a + ab * t)).norm() / radius
            }
        }
    }

    /// For a prism along z (the body's elliptic cylinders): its extent in z. Inside-ness is then [`Shape::level_xy`] ≤ 1
    /// with z in the extent, so partial volume in-plane and through the slice can be decided apart: most of a scan's
    /// partial-volume work is the body's surfaces, which need no supersampling through the slice, and its ends, which
    /// need none in-plane.
    pub fn prism_extent_z(&self) -> Option<(f64, f64)> {
        match self {
            Shape::EllipticCylinder {
                center, half_length, ..
            } => Some((center.z - half_length, center.z + half_length)),
            Shape::Sphere { .. } | Shape::Ellipsoid { .. } | Shape::Capsule { .. } => None,
        }
    }

    /// The level of a prism's cross-section, ignoring z (≤ 1 inside it; the same Lipschitz bound as `level`); the full
    /// level for a shape that is not a prism.
    pub fn level_xy(&self, p: &Point3<f64>) -> f64 {
        match self {
            Shape::EllipticCylinder {
                center, semi_x, semi_y, ..
            } => {
                let d = p - center;
                ((d.x / semi_x).powi(2) + (d.y / semi_y).powi(2)).sqrt()
            }
            _ => self.level(p),
        }
    }

    /// Lipschitz bound of `level` (per metre).
    pub fn lipschitz(&self) -> f64 {
        match self {
            Shape::Sphere { radius, .. } | Shape::Capsule { radius, .. } => 1.0 / radius,
            Shape::Ellipsoid { semi_axes, .. } => 1.0 / semi_axes.min(),
            Shape::EllipticCylinder {
                semi_x,
                semi_y,
                half_length,
                ..
            } => 1.0 / semi_x.min(*semi_y).min(*half_length),
        }
    }

    /// Axis-aligned bounding box (min, max).
    pub fn bounds(&self) -> (Point3<f64>, Point3<f64>) {
        match self {
            Shape::Sphere { center, radius } => {
                let r = Vector3::repeat(*radius);
                (center - r, center + r)
            }
            Shape::Ellipsoid { center, semi_axes } => (center - semi_axes, center + semi_axes),
            Shape::EllipticCylinder {
                center,
                semi_x,
                semi_y,
                half_length,
            } => {
                let r = Vector3::new(*semi_x, *semi_y, *half_length);
                (center - r, center + r)
            }
            Shape::Capsule { a, b, radius } => {
                let r = Vector3::repeat(*radius);
                (a.inf(b) - r, a.sup(b) + r)
            }
        }
    }
}

/// A shape filled with one HU value.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    /// The solid.
    pub shape: Shape,
    /// Its attenuation, HU.
    pub hu: f64,
}

/// A metal needle from the hub end to the tip: a bright line segment (the later check-scan issue detects its tip).
#[derive(Clone, Debug, PartialEq)]
pub struct Needle {
    /// Where the needle leaves the guide (outside the body).
    pub hub: Point<Ct>,
    /// The tip.
    pub tip: Point<Ct>,
    /// Shaft radius, metres (an 18 G needle: 0.6 mm).
    pub radius: f64,
    /// Attenuation, HU (steel saturates real scanners; 3000 keeps inside the int16 export range).
    pub hu: f64,
}

/// Attenuation the scanner gives a steel needle: steel saturates real scanners; 3000 HU stays below the 3071 HU ceiling of
/// the 12-bit export, so the needle's partial-volume profile is not clipped.
pub const NEEDLE_HU: f64 = 3000.0;

/// A needle bent along a polyline from the hub end to the tip (a bevel-tip needle deflected in tissue), drawn as a chain
/// of capsules.
#[derive(Clone, Debug, PartialEq)]
pub struct NeedlePath {
    /// Shaft points from the hub end to the tip; the last one is the physical tip.
    pub points: Vec<Point<Ct>>,
    /// Shaft radius, metres (an 18 G needle: 0.635 mm).
    pub radius: f64,
    /// Attenuation, HU (see [`NEEDLE_HU`]).
    pub hu: f64,
}

/// A body phantom: an elliptic cylinder along z with skin, subcutaneous fat and soft tissue, lesions, optional bone.
#[derive(Clone, Debug, PartialEq)]
pub struct PhantomBody {
    /// Centre of the body.
    pub center: Point<Ct>,
    /// Outer semi-axes along x (left–right) and y (anterior–posterior), metres.
    pub semi_x: f64,
    /// See `semi_x`.
    pub semi_y: f64,
    /// Length along z, metres.
    pub length: f64,
    /// Skin thickness, metres.
    pub skin: f64,
    /// Subcutaneous fat thickness, metres.
    pub fat: f64,
    /// Lesions (targets): centre, radius (metres), HU.
    pub lesions: Vec<(Point<Ct>, f64, f64)>,
    /// Bone blobs (a rib section): centre, semi-axes (metres), HU.
    pub bones: Vec<(Point<Ct>, Vector3<f64>, f64)>,
}

impl PhantomBody {
    /// An adult abdomen-like section (340 × 240 mm) centred at `center`, 2 mm skin, 15 mm fat, no lesions or bone.
    pub fn abdomen(center: Point<Ct>, length: f64) -> Self {
        Self {
            center,
            semi_x: 0.17,
            semi_y: 0.12,
            length,
            skin: 0.002,
            fat: 0.015,
            lesions: vec![],
            bones: vec![],
        }
    }
}

/// Everything the scanner sees.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// HU where no element is (air).
    pub background_hu: f64,
    /// Elements in painting order (later overwrite earlier).
    pub elements: Vec<Element>,
    /// Metal that streaks (the needle's shaft segments), for [`crate::ScanProtocol::streaks`].
    pub streak_sources: Vec<[Point3<f64>; 2]>,
    /// Radius of that metal, m.
    pub streak_radius: f64,
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    /// An empty scene of air.
    pub fn new() -> Self {
        Self {
            background_hu: AIR_HU,
            elements: Vec::new(),
            streak_sources: Vec::new(),
            streak_radius: 0.0,
        }
    }

    /// Adds an element on top of the existing ones.
    pub fn add(&mut self, shape: Shape, hu: f64) -> &mut Self {
        self.elements.push(Element { shape, hu });
        self
    }

    /// Places the registration frame's spheres at `T_ct_robot` and returns their true centres in CT (ground truth).
    pub fn add_fiducial_frame(
        &mut self,
        model: &FiducialModel,
        t_ct_robot: &Transform<Ct, RobotBase>,
        hu: f64,
    ) -> Vec<Point<Ct>> {
        let centres: Vec<Point<Ct>> = model.points().iter().map(|p| t_ct_robot.apply(p)).collect();
        for c in &centres {
            self.add(
                Shape::Sphere {
                    center: c.coords,
                    radius: model.radius(),
                },
                hu,
            );
        }
        centres
    }

    /// Adds a body phantom (skin, fat, soft tissue, then lesions and bones on top).
    pub fn add_body(&mut self, body: &PhantomBody) -> &mut Self {
        let c = body.center.coords;
        let half = body.length / 2.0;
        let layers = [
            (0.0, SOFT_TISSUE_HU + 20.0),
            (body.skin, FAT_HU),
            (body.skin + body.fat, SOFT_TISSUE_HU),
        ];
        for (inset, hu) in layers {
            let shape = Shape::EllipticCylinder {
                center: c,
                semi_x: body.semi_x - inset,
                semi_y: body.semi_y - inset,
                half_length: half - inset,
            };
            self.add(shape, hu);
        }
        for (centre, radius, hu) in &body.lesions {
            self.add(
                Shape::Sphere {
                    center: centre.coords,
                    radius: *radius,
                },
                *hu,
            );
        }
        for (centre, semi_axes, hu) in &body.bones {
            self.add(
                Shape::Ellipsoid {
                    center: centre.coords,
                    semi_axes: *semi_axes,
                },
                *hu,
            );
        }
        self
    }

    /// Adds a bent needle on top of everything, one capsule per polyline segment. The last segment stops one radius short
    /// of the last point, so the rounded cap (standing in for the sharp bevel) ends exactly at the tip; points closer than
    /// two radii to the tip (other than the first) are dropped so that the last segment is long enough for that, and
    /// repeated points are skipped. Fewer than two points add nothing.
    pub fn add_needle_path(&mut self, needle: &NeedlePath) -> &mut Self {
        let Some(tip) = needle.points.last().map(|p| p.coords) else {
            return self;
        };
        let n = needle.points.len();
        let kept: Vec<Point3<f64>> = needle
            .points
            .iter()
            .enumerate()
            .filter(|(i, p)| *i == 0 || *i + 1 == n || (p.coords - tip).norm() > 2.0 * needle.radius)
            .map(|(_, p)| p.coords)
            .collect();
        let m = kept.len();
        for (i, pair) in kept.windows(2).enumerate() {
            let (a, mut b) = (pair[0], pair[1]);
            let length = (b - a).norm();
            if !(length.is_finite() && length > 0.0) {
                continue;
            }
            if i + 2 == m {
                if length <= needle.radius {
                    continue;
                }
                b = a + (b - a) * ((length - needle.radius) / length);
            }
            self.streak_sources.push([a, b]);
            self.streak_radius = needle.radius;
            self.add(
                Shape::Capsule {
                    a,
                    b,
                    radius: needle.radius,
                },
                needle.hu,
            );
        }
        self
    }

    /// Adds a needle on top of everything.
    pub fn add_needle(&mut self, needle: &Needle) -> &mut Self {
        self.streak_sources.push([needle.hub.coords, needle.tip.coords]);
        self.streak_radius = needle.radius;
        self.add(
            Shape::Capsule {
                a: needle.hub.coords,
                b: needle.tip.coords,
                radius: needle.radius,
            },
            needle.hu,
        )
    }
}
