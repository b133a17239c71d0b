//! The patient on the CT table, the robot's fiducial frame beside them and the needle in their tissue: the ground truth
//! that the virtual scanner images.
//!
//! The needle follows the robot: at every scan the twin reads the robot's encoder positions, puts the needle guide where
//! the robot as built ([`AsBuiltRobot`]: its own kinematics, zero offsets, backlash and holder play) and its true placement
//! on the table put it, and advances the needle–tissue model by the insertion since the last scan (pivoting it first if
//! the guide turned about the entry). For a still patient, scans are the only moments anyone looks, and the robot only
//! turns the guide with the insertion held, so syncing at scans loses nothing. A breathing patient is synced as time
//! passes too ([`Patient::sync_breathing`]): where the organ is while the needle advances decides the path it cuts.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::JointPositions;
use acus_control::registration::{CtVolume, FiducialModel};
use acus_sim_needle::{GuidePose, NeedleInTissue, TissueModel};
use acus_sim_scanner::{scan, NeedlePath, PhantomBody, ScanProtocol, Scene, Shape, Streaks, FIDUCIAL_HU, NEEDLE_HU};
use nalgebra::{Matrix3, Point3, Rotation3, UnitQuaternion, Vector3};

use crate::robot::AsBuiltRobot;
use crate::world::{self, ScannerModel, Stream};
use crate::TwinError;

/// The least lever (m) over which breathing turns the inserted needle: below this depth the guide, not the tissue,
/// holds the needle's direction.
const MIN_LEVER: f64 = 0.03;

/// The fiducial frame as manufactured: sphere centres in the robot base (the model's plus the drawn errors).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameAsBuilt {
    /// Sphere centres, base frame.
    pub centres: Vec<Point<RobotBase>>,
    /// Sphere radius, m.
    pub radius: f64,
}

impl FrameAsBuilt {
    /// The frame of `model` with each centre displaced by a Gaussian of σ `sigma` per axis drawn from `seed`.
    pub fn manufacture(model: &FiducialModel, sigma: f64, seed: u64) -> Self {
        let mut rng = world::rng(seed, Stream::Frame, 0);
        let centres = model
            .points()
            .iter()
            .map(|p| Point::new(p.coords + world::gaussian_vector(&mut rng, sigma)))
            .collect();
        Self {
            centres,
            radius: model.radius(),
        }
    }
}

/// How the scanner forms this scan's image (from the world's scanner model and the scan's draws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Imaging {
    /// Noise σ, HU.
    pub noise_hu: f64,
    /// In-plane PSF FWHM, m.
    pub psf_fwhm: f64,
    /// Metal streaks.
    pub streaks: Streaks,
    /// The table's displacement at this scan, m.
    pub table_offset: Vector3<f64>,
}

impl Imaging {
    /// Only noise (no PSF, streaks or table shift).
    pub fn noise_only(noise_hu: f64) -> Self {
        Self {
            noise_hu,
            psf_fwhm: 0.0,
            streaks: Streaks::NONE,
            table_offset: Vector3::zeros(),
        }
    }

    /// Scan number `scan` of a procedure in `model`'s world drawn with `seed`: the table offset along its travel (CT z)
    /// is drawn per scan.
    pub fn for_scan(model: &ScannerModel, seed: u64, scan: u64) -> Self {
        let mut rng = world::rng(seed, Stream::Table, scan);
        let s = &model.streaks;
        Self {
            noise_hu: model.noise_hu,
            psf_fwhm: model.psf_fwhm,
            streaks: Streaks {
                amplitude_hu: s.amplitude_hu,
                decay_length: s.decay_length,
                rays: s.rays,
            },
            table_offset: Vector3::new(0.0, 0.0, world::gaussian(&mut rng, model.table_sigma)),
        }
    }
}

/// The patient and the robot's placement. SI units, CT (LPS) frame.
#[derive(Clone, Debug)]
pub struct PatientConfig {
    /// Centre of the body phantom (an abdomen: elliptic cylinder along z).
    pub body_center: Point<Ct>,
    /// Body length along z.
    pub body_length: f64,
    /// Lesion (biopsy target) centre.
    pub lesion: Point<Ct>,
    /// Lesion radius.
    pub lesion_radius: f64,
    /// Lesion attenuation, HU (soft tissue is 40).
    pub lesion_hu: f64,
    /// The needle–tissue pair.
    pub tissue: TissueModel,
    /// Where the robot stands: its base in the scanner (ground truth; acus must find it by registration).
    pub t_ct_robot: Transform<Ct, RobotBase>,
    /// Needle shaft radius (18 G: 0.635 mm).
    pub needle_radius: f64,
}

impl PatientConfig {
    /// A supine abdomen section (260 mm long) centred in the scanner with a 16 mm lesion 9 cm under the anterior skin, and
    /// the robot's base plate on the table rails on the patient's left, its x along the table (CT +z), its y across the
    /// patient (CT −x), its z up (anterior, CT −y), the plate at table height (the body's posterior surface); its fiducial
    /// frame stands clear of the body's end (the nearest sphere 14 mm beyond it).
    pub fn reference() -> Self {
        let body_center = Point::xyz(0.0, 0.0, 0.0);
        let rotation = Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[
            Vector3::new(0.0, 0.0, 1.0),
            Vector3::new(-1.0, 0.0, 0.0),
            Vector3::new(0.0, -1.0, 0.0),
        ]));
        let t_ct_robot = Transform::from_isometry(nalgebra::Isometry3::from_parts(
            nalgebra::Translation3::new(0.33, 0.12, 0.0),
            UnitQuaternion::from_rotation_matrix(&rotation),
        ));
        Self {
            body_center,
            body_length: 0.26,
            lesion: Point::xyz(0.02, -0.03, 0.01),
            lesion_radius: 0.008,
            lesion_hu: 90.0,
            tissue: TissueModel::default(),
            t_ct_robot,
            needle_radius: 0.635e-3,
        }
    }

    /// The body phantom (without lesion: the lesion moves with the tissue and is drawn where the needle model has it).
    pub fn body(&self) -> PhantomBody {
        PhantomBody::abdomen(self.body_center, self.body_length)
    }

    /// The point of the anterior skin above `p` (along CT −y), on the body's outer surface.
    pub fn skin_above(&self, p: &Point<Ct>) -> Point<Ct> {
        let body = self.body();
        let dx = (p.coords.x - body.center.coords.x) / body.semi_x;
        let dy = body.semi_y * (1.0 - dx * dx).max(0.0).sqrt();
        Point::xyz(p.coords.x, body.center.coords.y - dy, p.coords.z)
    }
}

/// The patient with the needle, as the scanner will see them.
pub struct Patient {
    config: PatientConfig,
    robot: AsBuiltRobot,
    frame: FrameAsBuilt,
    needle: Option<NeedleInTissue>,
    /// The organ's breathing displacement now (CT, m): it carries the lesion and the needle in it.
    organ: Vector3<f64>,
    /// The needle shaft's bend between the robot's guide and the tissue that holds it, as breathing moves the tissue
    /// relative to the guide.
    bend: UnitQuaternion<f64>,
    /// Where the tissue holds the shaft (organ frame), with the entry and the bend when that was taken: the bend is a
    /// function of where the entry is now, not of the path it took there (a breath out and back leaves the needle as it
    /// was, however often it is looked at). Taken again after the needle advances or the guide turns; after a
    /// withdrawal, restored from [`Self::cuts`].
    bend_anchor: Option<BendAnchor>,
    /// The entry (organ frame) and the bend at each advance, by depth: a withdrawal puts the shaft back in the track it
    /// cut, so the bend is elastic again about the entry the track was cut from, whatever the organ did on the way
    /// out (a withdrawal in free breathing leaves no bend behind once the tissue is back).
    cuts: Vec<Cut>,
    /// The encoder positions of the last sync.
    last_q: Option<JointPositions>,
}

/// See [`Patient::bend_anchor`]: organ frame, m.
#[derive(Clone, Copy, Debug)]
struct BendAnchor {
    held: nalgebra::Point3<f64>,
    entry: nalgebra::Point3<f64>,
    bend: UnitQuaternion<f64>,
}

impl BendAnchor {
    /// Held by the tissue at the tip, or `MIN_LEVER` along the shaft from `entry` while less is inserted (a needle
    /// barely in is held by the guide, not by the tissue).
    fn new(
        entry: nalgebra::Point3<f64>,
        tip: nalgebra::Point3<f64>,
        heading: Vector3<f64>,
        bend: UnitQuaternion<f64>,
    ) -> Self {
        let shaft = tip - entry;
        let lever = shaft.norm().max(MIN_LEVER);
        let dir = shaft.try_normalize(1e-12).unwrap_or(heading);
        Self {
            held: entry + dir * lever,
            entry,
            bend,
        }
    }

    /// The bend with the entry at `entry`: the shaft turned by the angle the entry moved, seen from the held point.
    fn bend_at(&self, entry: &nalgebra::Point3<f64>) -> UnitQuaternion<f64> {
        let turn = UnitQuaternion::rotation_between(&(self.held - self.entry), &(self.held - entry))
            .unwrap_or_else(UnitQuaternion::identity);
        turn * self.bend
    }
}

/// See [`Patient::cuts`]: the entry (organ frame, m) and the bend when the needle reached `depth` (m).
#[derive(Clone, Copy, Debug)]
struct Cut {
    depth: f64,
    entry: nalgebra::Point3<f64>,
    bend: UnitQuaternion<f64>,
}

impl Patient {
    /// A patient beside a robot and frame exactly as designed (`urdf`, its fiducial model): the ideal world.
    pub fn ideal(config: PatientConfig, urdf: &str) -> Result<Self, TwinError> {
        let robot = AsBuiltRobot::build(urdf, &crate::world::RobotErrors::NONE, 0)?;
        let model = FiducialModel::from_urdf_str(urdf).map_err(|e| TwinError::Urdf(e.to_string()))?;
        Self::new(config, robot, FrameAsBuilt::manufacture(&model, 0.0, 0))
    }

    /// A patient with no needle in, beside `robot` carrying `frame`.
    pub fn new(config: PatientConfig, robot: AsBuiltRobot, frame: FrameAsBuilt) -> Result<Self, TwinError> {
        config.tissue.validate().map_err(TwinError::Needle)?;
        // The frame must clear the body: the level-set bound says a sphere is wholly outside when its centre's level
        // exceeds 1 by more than the Lipschitz bound times its radius.
        let body = config.body();
        let skin = Shape::EllipticCylinder {
            center: body.center.coords,
            semi_x: body.semi_x,
            semi_y: body.semi_y,
            half_length: body.length / 2.0,
        };
        for (index, p) in frame.centres.iter().enumerate() {
            let c = config.t_ct_robot.apply(p).coords;
            if skin.level(&c) <= 1.0 + skin.lipschitz() * frame.radius {
                return Err(TwinError::FiducialInBody {
                    index,
                    x_mm: c.x * 1e3,
                    y_mm: c.y * 1e3,
                    z_mm: c.z * 1e3,
                });
            }
        }
        Ok(Self {
            config,
            robot,
            frame,
            needle: None,
            organ: Vector3::zeros(),
            bend: UnitQuaternion::identity(),
            bend_anchor: None,
            cuts: Vec::new(),
            last_q: None,
        })
    }

    /// The robot as built.
    pub fn robot(&self) -> &AsBuiltRobot {
        &self.robot
    }

    /// The frame as manufactured.
    pub fn frame(&self) -> &FrameAsBuilt {
        &self.frame
    }

    /// The configuration.
    pub fn config(&self) -> &PatientConfig {
        &self.config
    }

    /// Bring the needle to the robot's encoder positions `q` (see the module docs), the organ where it is now.
    /// Refuses a guide that moved off the entry with the needle in (the model has no answer for dragging a needle
    /// sideways through tissue; neither has the patient).
    pub fn sync(&mut self, q: &JointPositions) -> Result<(), TwinError> {
        self.sync_breathing(q, self.organ)
    }

    /// As [`Self::sync`], with the organ displaced by `organ` (CT, m) by the breathing. The needle model lives in the
    /// organ's frame (the end-expiration anatomy of the configuration): the inserted part moves with the organ; the robot
    /// holds the guide still in the scanner, so breathing slides the tissue under the skin entry and bends the shaft
    /// between the guide and the tissue, turning the tip's heading by the angle the entry moved as seen from the tip.
    /// Insertion then continues along that heading: a step taken in another breathing phase than the scan it was aimed
    /// on goes astray, which is what respiratory gating is for.
    pub fn sync_breathing(&mut self, q: &JointPositions, organ: Vector3<f64>) -> Result<(), TwinError> {
        self.organ = organ;
        self.last_q = Some(*q);
        let state = self.robot.sync(q)?;
        let t = &self.config.t_ct_robot;
        let holder = t.isometry().rotation * state.holder;
        let entry = Point::new(t.apply(&state.entry).coords - organ);
        let depth = state.depth;
        if depth <= 1e-6 {
            self.needle = None;
            self.bend = UnitQuaternion::identity();
            self.bend_anchor = None;
            self.cuts.clear();
            return Ok(());
        }
        let needle = match self.needle.as_mut() {
            Some(n) => {
                let (old_entry, tip) = (n.guide().entry.coords, n.tip().coords);
                if (entry.coords - old_entry).norm() > 1e-9 {
                    // The tissue moved under the entry: the shaft turns by the angle the entry moved, seen from where
                    // the tissue holds it.
                    let bend = self.bend;
                    let heading = n.heading().into_inner();
                    let a = *self
                        .bend_anchor
                        .get_or_insert_with(|| BendAnchor::new(old_entry, tip, heading, bend));
                    self.bend = a.bend_at(&entry.coords);
                    let guide = GuidePose {
                        entry,
                        holder: self.bend * holder,
                    };
                    n.set_guide_tissue_moved(guide).map_err(TwinError::Needle)?;
                } else {
                    let guide = GuidePose {
                        entry,
                        holder: self.bend * holder,
                    };
                    if n.guide() != &guide {
                        n.set_guide(guide).map_err(TwinError::Needle)?;
                        self.bend_anchor = None;
                    }
                }
                n
            }
            None => {
                self.cuts = vec![Cut {
                    depth: 0.0,
                    entry: entry.coords,
                    bend: self.bend,
                }];
                self.needle.insert(
                    NeedleInTissue::new(
                        self.config.tissue.clone(),
                        GuidePose { entry, holder },
                        self.config.lesion,
                    )
                    .map_err(TwinError::Needle)?,
                )
            }
        };
        let increment = depth - needle.depth();
        // Below a nanometre is rounding (a pivot recomputes the depth), not insertion: advancing by it would draw the
        // heading noise of a piece that does not exist, and shift every later draw.
        if increment > 1e-9 {
            needle.advance(increment).map_err(TwinError::Needle)?;
            self.bend_anchor = None;
            self.cuts.push(Cut {
                depth: needle.depth(),
                entry: entry.coords,
                bend: self.bend,
            });
        } else if increment < -1e-6 {
            // Pulled back part of the way (a withdrawal before a redirect): the tip retraces its track, and the shaft
            // lies in it as when it was cut there: bent about that cut's entry by where the entry is now.
            needle.withdraw(-increment).map_err(TwinError::Needle)?;
            let depth = needle.depth();
            let keep = self.cuts.iter().rposition(|c| c.depth <= depth + 1e-9).unwrap_or(0);
            self.cuts.truncate(keep + 1);
            if let Some(cut) = self.cuts.last().copied() {
                let a = BendAnchor::new(cut.entry, needle.tip().coords, needle.heading().into_inner(), cut.bend);
                self.bend = a.bend_at(&entry.coords);
                self.bend_anchor = Some(a);
                needle
                    .set_guide_tissue_moved(GuidePose {
                        entry,
                        holder: self.bend * holder,
                    })
                    .map_err(TwinError::Needle)?;
            }
        }
        Ok(())
    }

    /// As [`Self::sync_breathing`], for a robot that may have passed through `shallowest` (the encoder positions at the
    /// shallowest insertion since the last sync): a needle withdrawn and inserted again between two syncs went back
    /// along its track first, and only then cut a new one. Syncs through `shallowest` only when it lies below both the
    /// last sync and `q` (otherwise the motion in between went one way and a single sync is exact).
    pub fn sync_through(
        &mut self,
        shallowest: Option<&JointPositions>,
        q: &JointPositions,
        organ: Vector3<f64>,
    ) -> Result<(), TwinError> {
        if let (Some(low), Some(last)) = (shallowest, self.last_q) {
            if low.insertion() < last.insertion().min(q.insertion()) - 1e-7 {
                self.sync_breathing(low, organ)?;
            }
        }
        self.sync_breathing(q, organ)
    }

    /// True needle tip now (CT), if the needle is in.
    pub fn tip(&self) -> Option<Point<Ct>> {
        self.needle.as_ref().map(|n| Point::new(n.tip().coords + self.organ))
    }

    /// Move the organ by the breathing displacement `d` (CT, m, from the end-expiration anatomy the configuration
    /// describes), the needle in it with it, without syncing the robot (a scene for a test); see
    /// [`Self::sync_breathing`].
    pub fn set_organ_offset(&mut self, d: Vector3<f64>) {
        self.organ = d;
    }

    /// The organ's breathing displacement now, CT, m.
    pub fn organ_offset(&self) -> Vector3<f64> {
        self.organ
    }

    /// True lesion centre now: moved by the needle, if it is in, and by the breathing.
    pub fn lesion(&self) -> Point<Ct> {
        let pushed = self.needle.as_ref().map_or(self.config.lesion, |n| n.target());
        Point::new(pushed.coords + self.organ)
    }

    /// The needle model (in the organ's frame: CT at the configuration's end-expiration anatomy), if the needle is in.
    pub fn needle(&self) -> Option<&NeedleInTissue> {
        self.needle.as_ref()
    }

    /// Everything in the scanner now.
    pub fn scene(&self) -> Scene {
        let mut scene = Scene::new();
        let mut body = self.config.body();
        body.lesions
            .push((self.lesion(), self.config.lesion_radius, self.config.lesion_hu));
        scene.add_body(&body);
        for c in &self.frame.centres {
            scene.add(
                Shape::Sphere {
                    center: self.config.t_ct_robot.apply(c).coords,
                    radius: self.frame.radius,
                },
                FIDUCIAL_HU,
            );
        }
        if let Some(needle) = &self.needle {
            let points = needle
                .shaft_polyline(0.03, 4e-3)
                .into_iter()
                .map(|p| Point::new(p.coords + self.organ))
                .collect();
            scene.add_needle_path(&NeedlePath {
                points,
                radius: self.config.needle_radius,
                hu: NEEDLE_HU,
            });
        }
        scene
    }

    /// The planning scan: the fiducial frame, the skin over the target and the lesion, at `pixel` in-plane and `slice`
    /// spacing and thickness (metres).
    pub fn planning_protocol(&self, pixel: f64, slice: f64, imaging: &Imaging, seed: u64) -> ScanProtocol {
        let t = &self.config.t_ct_robot;
        let mut points: Vec<Point3<f64>> = self.frame.centres.iter().map(|p| t.apply(p).coords).collect();
        let r = Vector3::repeat(self.config.lesion_radius * 2.5);
        let lesion = self.lesion().coords;
        points.extend([
            lesion - r,
            lesion + r,
            self.config.skin_above(&self.config.lesion).coords - r,
        ]);
        covering(&points, 0.008, pixel, slice, imaging, seed)
    }

    /// A check scan: a slab around the needle and the lesion.
    pub fn check_protocol(&self, pixel: f64, slice: f64, imaging: &Imaging, seed: u64) -> ScanProtocol {
        let r = Vector3::repeat(self.config.lesion_radius * 2.5);
        let lesion = self.lesion().coords;
        let mut points = vec![lesion - r, lesion + r];
        if let Some(needle) = &self.needle {
            let entry = needle.guide().entry.coords + self.organ;
            points.extend([
                entry,
                entry - needle.guide().direction().into_inner() * 0.02,
                needle.tip().coords + self.organ,
            ]);
        }
        covering(&points, 0.01, pixel, slice, imaging, seed)
    }

    /// Image the scene.
    pub fn scan(&self, protocol: &ScanProtocol) -> Result<CtVolume, TwinError> {
        scan(&self.scene(), protocol).map_err(TwinError::Scanner)
    }
}

/// An axial protocol over the bounding box of `points` plus `margin` (metres).
fn covering(points: &[Point3<f64>], margin: f64, pixel: f64, slice: f64, imaging: &Imaging, seed: u64) -> ScanProtocol {
    let first = points.first().copied().unwrap_or_else(Point3::origin);
    let (lo, hi) = points.iter().fold((first, first), |(l, h), p| (l.inf(p), h.sup(p)));
    let m = Vector3::repeat(margin);
    let mut protocol = ScanProtocol::covering(Point::new(lo - m), Point::new(hi + m), pixel, slice, slice);
    protocol.noise_sigma_hu = imaging.noise_hu;
    protocol.psf_fwhm = imaging.psf_fwhm;
    protocol.streaks = imaging.streaks;
    protocol.table_offset = imaging.table_offset;
    protocol.seed = seed;
    protocol
}
