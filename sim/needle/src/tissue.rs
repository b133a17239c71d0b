//! The needle in tissue: integration of the bevel-tip arc, guide pivots and target shift.

use acus_control::frames::{Ct, Point};
use nalgebra::{Point3, Unit, UnitQuaternion, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xorshift::XorShiftRng;

use crate::{NeedleError, TissueModel};

/// How far the guide may move between calls while the needle is in tissue and still count as a pivot about the entry
/// (the RCM holds the entry to well under this; anything more is a translation the model refuses).
const ENTRY_TOLERANCE: f64 = 1.0e-6;

/// The needle guide: its tip (the remote centre of motion) on the skin entry point and the holder's orientation in CT.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuidePose {
    /// Guide tip = RCM = skin entry point.
    pub entry: Point<Ct>,
    /// Orientation of the needle holder in CT (maps holder axes into CT): +z is the needle direction into the patient;
    /// the bevel's bending direction is fixed in its x–y plane ([`TissueModel::bevel_angle`]). From the robot's forward
    /// kinematics (`NeedleState::tip_orientation`) composed with `T_ct_robot`.
    pub holder: UnitQuaternion<f64>,
}

impl GuidePose {
    /// The needle direction into the patient (holder +z).
    pub fn direction(&self) -> Unit<Vector3<f64>> {
        self.holder * Vector3::z_axis()
    }

    /// A guide along `direction` whose holder is the smallest rotation of the CT axes that takes +z onto it (for
    /// tests; the robot's own holder orientation comes from its forward kinematics).
    pub fn along(entry: Point<Ct>, direction: Unit<Vector3<f64>>) -> Self {
        let holder = UnitQuaternion::rotation_between_axis(&Vector3::z_axis(), &direction)
            .unwrap_or_else(|| UnitQuaternion::from_axis_angle(&Vector3::x_axis(), core::f64::consts::PI));
        Self { entry, holder }
    }
}

/// The tip frame at one point of the tip path: what a withdrawal restores.
#[derive(Clone, Copy, Debug)]
struct TipFrame {
    depth: f64,
    heading: Unit<Vector3<f64>>,
    bend: Unit<Vector3<f64>>,
    shift: Vector3<f64>,
    /// The guide's holder orientation when the tip was there.
    holder: UnitQuaternion<f64>,
}

/// A bevel-tip needle in tissue, driven by guide poses and insertion increments (see the crate docs).
///
/// State: the guide pose, the inserted depth (arc length of the tip path beyond the entry), the tip frame (position,
/// heading, bending direction) and the tip path. Between calls the tip frame follows constant-curvature arcs; noise, if
/// configured, is a random walk of the heading.
#[derive(Clone, Debug)]
pub struct NeedleInTissue {
    model: TissueModel,
    guide: GuidePose,
    curvature: f64,
    depth: f64,
    tip: Point3<f64>,
    heading: Unit<Vector3<f64>>,
    bend: Unit<Vector3<f64>>,
    path: Vec<Point3<f64>>,
    /// The tip frame at each point of `path` (same index), so a withdrawal can put the tip back where it was.
    frames: Vec<TipFrame>,
    planned_target: Point3<f64>,
    shift: Vector3<f64>,
    rng: XorShiftRng,
}

impl NeedleInTissue {
    /// A needle not yet inserted (tip on the entry point) in a tissue whose target (lesion centre, as planned on the
    /// planning scan) is `target`. Draws the needle's curvature from the model's seed.
    pub fn new(model: TissueModel, guide: GuidePose, target: Point<Ct>) -> Result<Self, NeedleError> {
        model.validate()?;
        check_guide(&guide)?;
        if !target.is_finite() {
            return Err(NeedleError::NotFinite { what: "target" });
        }
        let mut rng = XorShiftRng::seed_from_u64(model.seed);
        let draw: f64 = rng.sample(StandardNormal);
        let curvature = (model.curvature * (1.0 + model.curvature_spread * draw)).max(0.0);
        let (heading, bend) = frame_of(&guide, model.bevel_angle);
        Ok(Self {
            curvature,
            depth: 0.0,
            tip: guide.entry.coords,
            heading,
            bend,
            path: vec![guide.entry.coords],
            frames: vec![TipFrame {
                depth: 0.0,
                heading,
                bend,
                shift: Vector3::zeros(),
                holder: guide.holder,
            }],
            planned_target: target.coords,
            shift: Vector3::zeros(),
            rng,
            guide,
            model,
        })
    }

    /// Moves the guide. Before insertion (depth 0) the guide may go anywhere and the tip frame follows it.
    ///
    /// With the needle inserted the guide may only pivot about the entry point (the RCM stays on the skin, or slides
    /// within [`TissueModel::skin_drag`] with the skin following it), and the
    /// model assumes: the inserted part of the needle stays where the tissue holds it (the path and the tip position do
    /// not move), the shaft outside the body turns with the guide, and the tip frame (heading and bevel direction)
    /// turns by the guide's rotation scaled by `pivot_heading_transfer` (1: a needle stiff in bending and torsion over
    /// the last centimetres, whose tip the tissue holds in place but lets turn; 0: the tissue holds the tip's heading
    /// too). Further insertion continues from the tip with the new heading.
    pub fn set_guide(&mut self, guide: GuidePose) -> Result<(), NeedleError> {
        check_guide(&guide)?;
        if self.depth > 0.0 {
            let moved = guide.entry.distance(&self.guide.entry);
            if moved > ENTRY_TOLERANCE.max(self.model.skin_drag) {
                return Err(NeedleError::EntryMoved {
                    moved_mm: moved * 1e3,
                    depth_mm: self.depth * 1e3,
                });
            }
        }
        self.move_guide(guide)
    }

    /// As [`Self::set_guide`], for a guide that moved relative to the tissue because the tissue moved (breathing
    /// carries the organ under the skin while the robot holds the guide): the entry may move any distance; the inserted
    /// part stays where the tissue holds it, and the tip frame turns with `guide`'s rotation as in `set_guide` (the
    /// caller folds the shaft's bend into it).
    pub fn set_guide_tissue_moved(&mut self, guide: GuidePose) -> Result<(), NeedleError> {
        check_guide(&guide)?;
        self.move_guide(guide)
    }

    fn move_guide(&mut self, guide: GuidePose) -> Result<(), NeedleError> {
        if self.depth == 0.0 {
            let (heading, bend) = frame_of(&guide, self.model.bevel_angle);
            self.heading = heading;
            self.bend = bend;
            self.tip = guide.entry.coords;
            self.path = vec![guide.entry.coords];
            self.frames = vec![TipFrame {
                depth: 0.0,
                heading,
                bend,
                shift: self.shift,
                holder: guide.holder,
            }];
            self.guide = guide;
            return Ok(());
        }
        let turn = (guide.holder * self.guide.holder.inverse()).powf(self.model.pivot_heading_transfer);
        self.heading = turn * self.heading;
        self.bend = orthonormal(&self.heading, &(turn * self.bend));
        // The skin follows a guide that slid within `skin_drag`: the shaft's entry point moves with it; the inserted part
        // stays where the tissue holds it.
        if let Some(first) = self.path.first_mut() {
            *first = guide.entry.coords;
        }
        self.guide = guide;
        Ok(())
    }

    /// Inserts the needle by `increment` metres of arc length: the tip frame moves along exact constant-curvature arcs
    /// (in pieces of at most `step`, each followed by the heading noise), and the target is dragged along the heading.
    pub fn advance(&mut self, increment: f64) -> Result<(), NeedleError> {
        if !increment.is_finite() {
            return Err(NeedleError::NotFinite {
                what: "insertion increment",
            });
        }
        if increment < 0.0 {
            return Err(NeedleError::NegativeIncrement {
                increment_mm: increment * 1e3,
            });
        }
        let mut left = increment;
        while left > 0.0 {
            let h = left.min(self.model.step);
            left -= h;
            self.arc(h);
            if self.model.heading_noise > 0.0 {
                let sigma = self.model.heading_noise * h.sqrt();
                let (a, b): (f64, f64) = (self.rng.sample(StandardNormal), self.rng.sample(StandardNormal));
                let side = self.heading.cross(&self.bend);
                let turn = UnitQuaternion::from_scaled_axis((self.bend.into_inner() * a + side * b) * sigma);
                self.heading = turn * self.heading;
                self.bend = orthonormal(&self.heading, &(turn * self.bend));
            }
            let lambda = self.model.shift_length;
            let pushed = self.model.shift_max * ((-self.depth / lambda).exp() - (-(self.depth + h) / lambda).exp());
            self.shift += self.heading.into_inner() * pushed;
            self.depth += h;
            self.path.push(self.tip);
            self.frames.push(self.frame());
        }
        Ok(())
    }

    /// Pulls the needle back by `length` metres of arc length along the track it cut: the tip returns to where it was
    /// at that depth, with the heading and bending direction it had there (a withdrawal retraces the track; the tissue
    /// guides the shaft back along it). The tissue the needle pushed relaxes with it: the target shift goes back to its
    /// value at that depth (re-inserting pushes it again). A guide pivot with the needle withdrawn then turns the heading
    /// from there, so re-insertion cuts a new track from the withdrawn tip.
    pub fn withdraw(&mut self, length: f64) -> Result<(), NeedleError> {
        if !length.is_finite() {
            return Err(NeedleError::NotFinite {
                what: "withdrawal length",
            });
        }
        if length < 0.0 {
            return Err(NeedleError::NegativeIncrement {
                increment_mm: -length * 1e3,
            });
        }
        let goal = (self.depth - length).max(0.0);
        // The last recorded point at or above the goal depth (index 0 is the entry at depth 0); a point within a
        // nanometre of it is that point (depths are sums of pieces, and a withdrawal by the length inserted since must
        // land on it, with the heading it had there).
        let keep = self.frames.iter().rposition(|f| f.depth <= goal + 1e-9).unwrap_or(0);
        self.path.truncate(keep + 1);
        self.frames.truncate(keep + 1);
        let (Some(p), Some(f)) = (self.path.last().copied(), self.frames.last().copied()) else {
            return Ok(());
        };
        self.tip = p;
        self.depth = f.depth;
        self.heading = f.heading;
        self.bend = f.bend;
        self.shift = f.shift;
        // Within one integration piece the track is an exact arc: retrace the rest of it without noise.
        let rest = goal - self.depth;
        if rest > 1e-9 {
            self.arc(rest);
            self.depth = goal;
            self.path.push(self.tip);
        } else {
            self.frames.pop();
        }
        // The guide may have turned since the tip was here: the tip frame turns with it as in `set_guide`.
        let turn = (self.guide.holder * f.holder.inverse()).powf(self.model.pivot_heading_transfer);
        self.heading = turn * self.heading;
        self.bend = orthonormal(&self.heading, &(turn * self.bend));
        self.frames.push(self.frame());
        Ok(())
    }

    fn frame(&self) -> TipFrame {
        TipFrame {
            depth: self.depth,
            heading: self.heading,
            bend: self.bend,
            shift: self.shift,
            holder: self.guide.holder,
        }
    }

    /// One exact arc of length `h`: the heading turns towards the bending direction at rate κ (Webster et al. 2006 with
    /// the bevel held still: a planar circle), `p(h) = p + t·sin(κh)/κ + n·(1 − cos(κh))/κ`.
    fn arc(&mut self, h: f64) {
        let (t, n, k) = (self.heading.into_inner(), self.bend.into_inner(), self.curvature);
        let (along, across) = if k * h > 1e-9 {
            ((k * h).sin() / k, (1.0 - (k * h).cos()) / k)
        } else {
            (h, k * h * h / 2.0)
        };
        self.tip += t * along + n * across;
        let (s, c) = (k * h).sin_cos();
        self.heading = Unit::new_normalize(t * c + n * s);
        self.bend = orthonormal(&self.heading, &(n * c - t * s));
    }

    /// Ground-truth tip position.
    pub fn tip(&self) -> Point<Ct> {
        Point::new(self.tip)
    }

    /// Unit tangent of the tip path at the tip.
    pub fn heading(&self) -> Unit<Vector3<f64>> {
        self.heading
    }

    /// Unit direction the tip path bends towards (perpendicular to the heading).
    pub fn bend_direction(&self) -> Unit<Vector3<f64>> {
        self.bend
    }

    /// Inserted depth: arc length of the tip path beyond the entry, metres.
    pub fn depth(&self) -> f64 {
        self.depth
    }

    /// This needle's drawn curvature κ, 1/m.
    pub fn curvature(&self) -> f64 {
        self.curvature
    }

    /// The current guide pose.
    pub fn guide(&self) -> &GuidePose {
        &self.guide
    }

    /// The true (displaced) target: the planned lesion centre plus the tissue shift so far.
    pub fn target(&self) -> Point<Ct> {
        Point::new(self.planned_target + self.shift)
    }

    /// The target displacement so far (CT frame), metres.
    pub fn target_shift(&self) -> Vector3<f64> {
        self.shift
    }

    /// The tip path from the entry (first point) to the tip (last point), one point per integration piece.
    pub fn path(&self) -> Vec<Point<Ct>> {
        self.path.iter().map(|p| Point::new(*p)).collect()
    }

    /// The needle shaft for rendering: `outside` metres of straight shaft behind the entry along the current guide
    /// direction (inside the guide), then the tip path thinned to segments of at most `max_segment` metres (never fewer
    /// than the path's own points where it is coarser), ending exactly at the tip.
    pub fn shaft_polyline(&self, outside: f64, max_segment: f64) -> Vec<Point<Ct>> {
        let entry = self.guide.entry.coords;
        let mut points = Vec::with_capacity(self.path.len() + 2);
        if outside > 0.0 && outside.is_finite() {
            points.push(Point::new(entry - self.guide.direction().into_inner() * outside));
        }
        points.push(Point::new(entry));
        let every = if max_segment.is_finite() && max_segment > self.model.step {
            (max_segment / self.model.step).floor() as usize
        } else {
            1
        };
        let last = self.path.len() - 1;
        for (i, p) in self.path.iter().enumerate().skip(1) {
            if i % every == 0 || i == last {
                points.push(Point::new(*p));
            }
        }
        points
    }
}

fn check_guide(guide: &GuidePose) -> Result<(), NeedleError> {
    if !guide.entry.is_finite() {
        return Err(NeedleError::NotFinite {
            what: "guide entry point",
        });
    }
    if !guide.holder.coords.iter().all(|c| c.is_finite()) {
        return Err(NeedleError::NotFinite {
            what: "guide orientation",
        });
    }
    Ok(())
}

/// The tip frame of a needle not yet inserted: heading along the guide, bending direction from the bevel angle.
fn frame_of(guide: &GuidePose, bevel_angle: f64) -> (Unit<Vector3<f64>>, Unit<Vector3<f64>>) {
    let (s, c) = bevel_angle.sin_cos();
    (
        guide.direction(),
        guide.holder * Unit::new_unchecked(Vector3::new(c, s, 0.0)),
    )
}

/// `v` made exactly perpendicular to `t` and unit (guards rounding drift over many steps).
fn orthonormal(t: &Unit<Vector3<f64>>, v: &Vector3<f64>) -> Unit<Vector3<f64>> {
    Unit::new_normalize(v - t.into_inner() * t.dot(v))
}
