//! The study design of `acus validate sim`: targets spread over the phantom's reachable volume, drawn from the study
//! seed before anything runs. Pure: the same seed gives the same targets, and target k does not depend on how many
//! targets the study has (each has its own stream), so a bigger study extends a smaller one.
//!
//! A target is drawn as the path a radiologist would choose: a skin entry on the phantom's anterior surface, an entry
//! angle from vertical and its azimuth, and a depth; the lesion sits at the end of that path. It is kept only if the
//! lesion lies in the organ (clear of the skin, the fat and the phantom's ends) and the nominal robot (the controller's
//! URDF, placed where the world stands it) reaches the path with room for the corrections: the planned depth plus the
//! correction margin and the planner's insertion margin, also with the path tilted by the aim headroom about the entry
//! in four directions. Otherwise it is drawn again, so no trial is lost to an impossible plan.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::{NeedleRequest, PositionerModel};
use acus_control::planning::CORRECTION_DEPTH_MARGIN;
use acus_sim_twin::patient::PatientConfig;
use anyhow::{bail, Context, Result};
use nalgebra::{Rotation3, Unit, Vector3};

use crate::config::SimConfig;

/// Where targets may be (SI: m, rad). The defaults are a liver-biopsy-like range: 50–110 mm deep, 0–30° from vertical.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DesignSpace {
    /// Depth of the lesion centre below the skin entry, along the path: [min, max], m.
    pub depth: [f64; 2],
    /// Angle of the path from vertical (CT anterior–posterior), [min, max], rad.
    pub angle: [f64; 2],
    /// Skin entry x (left–right), CT, [min, max], m.
    pub entry_x: [f64; 2],
    /// Skin entry z (craniocaudal), CT, [min, max], m.
    pub entry_z: [f64; 2],
    /// Clearance of the lesion's surface from the fat layer under the skin, m.
    pub organ_margin: f64,
    /// Clearance of the lesion's surface from the phantom's ends, m.
    pub end_margin: f64,
    /// The path must stay reachable when tilted by this about the entry (room for the check scans' corrections), rad.
    pub aim_headroom: f64,
    /// Draws per target before the design gives up (a space the robot cannot reach is an error, not a hang).
    pub max_draws: usize,
}

impl Default for DesignSpace {
    /// Entries over the middle 240 × 200 mm of the anterior skin; the lesion 5 mm inside the organ, 20 mm from the
    /// phantom's ends; 5° of aim headroom (the correction's largest turn of an inserted needle).
    fn default() -> Self {
        Self {
            depth: [0.050, 0.110],
            angle: [0.0, 30f64.to_radians()],
            entry_x: [-0.12, 0.12],
            entry_z: [-0.10, 0.10],
            organ_margin: 0.005,
            end_margin: 0.020,
            aim_headroom: 5f64.to_radians(),
            max_draws: 10_000,
        }
    }
}

/// What a target must fit: the phantom (the patient's geometry, truth of the world) and the nominal robot.
#[derive(Clone, Debug)]
pub struct Geometry {
    patient: PatientConfig,
    model: PositionerModel,
    t_robot_ct: Transform<RobotBase, Ct>,
    insertion_margin: f64,
}

impl Geometry {
    /// The phantom of `config`'s world and the robot of its controller URDF.
    pub fn of(config: &SimConfig) -> Result<Self> {
        let model = PositionerModel::from_urdf_str(&config.controller.urdf)
            .map_err(|e| anyhow::anyhow!("the controller's URDF: {e}"))?;
        Ok(Self {
            patient: config.patient.clone(),
            model,
            t_robot_ct: config.patient.t_ct_robot.inverse(),
            insertion_margin: config.controller.file.planning.insertion_margin,
        })
    }
}

/// One target of the study, SI, CT LPS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Its index in the study (0-based).
    pub index: usize,
    /// The seed of every trial of this target (the same in every arm, so arms compare like with like).
    pub seed: u64,
    /// The skin entry's (x, z), m (`acus sim --entry-xz`).
    pub entry_xz: [f64; 2],
    /// The skin entry, m.
    pub entry: Vector3<f64>,
    /// The lesion centre, m (`acus sim --lesion`).
    pub lesion: Vector3<f64>,
    /// |lesion − entry|, m.
    pub depth: f64,
    /// The path's angle from vertical, rad.
    pub angle: f64,
    /// The path's azimuth about vertical (0 = toward the patient's left, CT +x), rad.
    pub azimuth: f64,
    /// Draws it took (1 = the first draw fitted).
    pub draws: usize,
}

/// Why a draw was refused, counted over a design.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    /// The lesion left the organ (too close to the skin, the fat, the sides or the ends).
    pub outside_organ: usize,
    /// The robot could not reach the path (or its tilted or deepened variants).
    pub unreachable: usize,
}

/// `n` targets from `seed`, and how many draws were refused.
pub fn draw_targets(n: usize, seed: u64, space: &DesignSpace, g: &Geometry) -> Result<(Vec<Target>, Refusals)> {
    space.check(g)?;
    let mut refusals = Refusals::default();
    let mut targets = Vec::with_capacity(n);
    for index in 0..n {
        let mut rng = SplitMix64::for_target(seed, index);
        let trial_seed = rng.next_u64() >> 32;
        let mut found = None;
        for draw in 1..=space.max_draws {
            let ex = rng.within(space.entry_x);
            let ez = rng.within(space.entry_z);
            let depth = rng.within(space.depth);
            let angle = rng.within(space.angle);
            let azimuth = rng.within([0.0, std::f64::consts::TAU]);
            let entry = g.patient.skin_above(&Point::xyz(ex, 0.0, ez)).coords.coords;
            let lesion = entry + direction(angle, azimuth).into_inner() * depth;
            if !g.in_organ(&lesion, space) {
                refusals.outside_organ += 1;
                continue;
            }
            if g.reach(&entry, &lesion, space).is_err() {
                refusals.unreachable += 1;
                continue;
            }
            found = Some(Target {
                index,
                seed: trial_seed,
                entry_xz: [ex, ez],
                entry,
                lesion,
                depth,
                angle,
                azimuth,
                draws: draw,
            });
            break;
        }
        match found {
            Some(t) => targets.push(t),
            None => bail!(
                "target {index}: no draw of {} fitted the phantom and the robot's reach ({} outside the organ, {} \
                 unreachable so far); widen or move the design space",
                space.max_draws,
                refusals.outside_organ,
                refusals.unreachable
            ),
        }
    }
    Ok((targets, refusals))
}

/// The unit path direction at `angle` from vertical (CT +y: anterior skin → posterior) and `azimuth` about it.
pub fn direction(angle: f64, azimuth: f64) -> Unit<Vector3<f64>> {
    Unit::new_normalize(Vector3::new(
        angle.sin() * azimuth.cos(),
        angle.cos(),
        angle.sin() * azimuth.sin(),
    ))
}

impl DesignSpace {
    /// Ranges ordered and finite, entries over the body (the configuration's own rule for `entry_xz`).
    fn check(&self, g: &Geometry) -> Result<()> {
        let body = g.patient.body();
        for (name, [lo, hi]) in [
            ("depth", self.depth),
            ("angle", self.angle),
            ("entry x", self.entry_x),
            ("entry z", self.entry_z),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                bail!("design {name} range [{lo}, {hi}] is not an ordered pair of finite numbers");
            }
        }
        if !(self.depth[0] > 0.0 && self.angle[0] >= 0.0 && self.angle[1] < std::f64::consts::FRAC_PI_2) {
            bail!("design depths must be > 0 and angles within [0°, 90°)");
        }
        let (cx, cz) = (body.center.coords.x, body.center.coords.z);
        let over_body = self.entry_x.iter().all(|x| (x - cx).abs() < body.semi_x)
            && self.entry_z.iter().all(|z| (z - cz).abs() <= body.length / 2.0);
        if !over_body {
            bail!(
                "design entries x {:?}, z {:?} m reach beyond the body ({} ± {} × {} ± {} m)",
                self.entry_x,
                self.entry_z,
                cx,
                body.semi_x,
                cz,
                body.length / 2.0
            );
        }
        if !(self.organ_margin >= 0.0 && self.end_margin >= 0.0 && self.aim_headroom >= 0.0 && self.max_draws > 0) {
            bail!("design margins must be ≥ 0 and max_draws > 0");
        }
        Ok(())
    }
}

impl Geometry {
    /// The lesion, with its radius and the margins, inside the organ: under the skin and the fat, off the ends.
    pub fn in_organ(&self, lesion: &Vector3<f64>, space: &DesignSpace) -> bool {
        let body = self.patient.body();
        let r = self.patient.lesion_radius;
        let inset = body.skin + body.fat + r + space.organ_margin;
        let (a, b) = (body.semi_x - inset, body.semi_y - inset);
        let d = lesion - body.center.coords.coords;
        let across = (d.x / a).powi(2) + (d.y / b).powi(2);
        a > 0.0 && b > 0.0 && across < 1.0 && d.z.abs() <= body.length / 2.0 - r - space.end_margin
    }

    /// The nominal robot reaches the path entry → lesion, deepened by the correction and insertion margins, and also
    /// tilted by the aim headroom about the entry in four directions.
    pub fn reach(&self, entry: &Vector3<f64>, lesion: &Vector3<f64>, space: &DesignSpace) -> Result<()> {
        let path = lesion - entry;
        let depth = path.norm();
        let d = Unit::try_new(path, 1e-9).context("the lesion is on the entry")?;
        let deepest = depth + CORRECTION_DEPTH_MARGIN + self.insertion_margin;
        // Two axes across the path to tilt it about.
        let across = Unit::new_normalize(d.cross(&if d.x.abs() < 0.9 { Vector3::x() } else { Vector3::z() }));
        let other = Unit::new_normalize(d.cross(&across));
        let mut aims = vec![(d, depth), (d, deepest)];
        if space.aim_headroom > 0.0 {
            for (axis, sign) in [(across, 1.0), (across, -1.0), (other, 1.0), (other, -1.0)] {
                let tilt = Rotation3::from_axis_angle(&axis, sign * space.aim_headroom);
                aims.push((tilt * d, deepest));
            }
        }
        let e = Point::<Ct>::new((*entry).into());
        for (dir, length) in aims {
            let target = Point::<Ct>::new((entry + dir.into_inner() * length).into());
            self.model
                .solve_needle(&NeedleRequest {
                    entry: self.t_robot_ct.apply(&e),
                    target: self.t_robot_ct.apply(&target),
                })
                .map_err(|err| anyhow::anyhow!("{err}"))?;
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): the design needs uniform numbers only, and a generator written
/// here keeps a seed's design the same whatever a random-number crate's next version does.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The stream of target `index` of study `seed`.
    fn for_target(seed: u64, index: usize) -> Self {
        let mut s = Self(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let first = s.next_u64();
        Self(first ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn within(&mut self, [lo, hi]: [f64; 2]) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim.yaml");
        Geometry::of(&SimConfig::load_in(&path, Some("realistic")).unwrap()).unwrap()
    }

    #[test]
    fn the_same_seed_draws_the_same_targets_and_a_bigger_study_extends_a_smaller_one() {
        let (g, space) = (geometry(), DesignSpace::default());
        let (a, _) = draw_targets(12, 7, &space, &g).unwrap();
        let (b, _) = draw_targets(12, 7, &space, &g).unwrap();
        assert_eq!(a, b);
        let (c, _) = draw_targets(20, 7, &space, &g).unwrap();
        assert_eq!(a[..], c[..12]);
        let (d, _) = draw_targets(12, 8, &space, &g).unwrap();
        assert!(a.iter().zip(&d).all(|(x, y)| x.lesion != y.lesion && x.seed != y.seed));
        let mut seeds: Vec<u64> = c.iter().map(|t| t.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), c.len(), "every target its own seed");
    }

    #[test]
    fn every_target_is_in_the_organ_reachable_and_in_the_ranges() {
        let (g, space) = (geometry(), DesignSpace::default());
        let (targets, refusals) = draw_targets(200, 1, &space, &g).unwrap();
        let body = g.patient.body();
        let mut angles = (f64::MAX, f64::MIN);
        let mut depths = (f64::MAX, f64::MIN);
        for t in &targets {
            // The path as drawn: the entry on the skin, the lesion at its depth and angle.
            let skin = g
                .patient
                .skin_above(&Point::xyz(t.entry_xz[0], 0.0, t.entry_xz[1]))
                .coords
                .coords;
            assert!((skin - t.entry).norm() < 1e-12);
            let path = t.lesion - t.entry;
            assert!((path.norm() - t.depth).abs() < 1e-12);
            let from_vertical = path.normalize().dot(&Vector3::y()).acos();
            assert!((from_vertical - t.angle).abs() < 1e-9, "{t:?}");
            assert!(t.depth >= space.depth[0] && t.depth <= space.depth[1]);
            assert!(t.angle >= space.angle[0] && t.angle <= space.angle[1]);
            // Inside the body's cross-section with room for the skin, fat and lesion, off the ends.
            let d = t.lesion - body.center.coords.coords;
            let inset = body.skin + body.fat + g.patient.lesion_radius;
            assert!((d.x / (body.semi_x - inset)).powi(2) + (d.y / (body.semi_y - inset)).powi(2) < 1.0);
            assert!(d.z.abs() < body.length / 2.0 - g.patient.lesion_radius);
            assert!(g.in_organ(&t.lesion, &space) && g.reach(&t.entry, &t.lesion, &space).is_ok());
            angles = (angles.0.min(t.angle), angles.1.max(t.angle));
            depths = (depths.0.min(t.depth), depths.1.max(t.depth));
        }
        // Spread over the ranges, not bunched in a corner. Near-vertical paths are rare: the yaw axis is vertical and
        // its ±60° leave no craniocaudal tilt of a vertical needle, so the aim headroom refuses most of them.
        println!("angles {:.1}…{:.1}°", angles.0.to_degrees(), angles.1.to_degrees());
        assert!(
            angles.0 < 5f64.to_radians() && angles.1 > 27f64.to_radians(),
            "{angles:?}"
        );
        assert!(depths.0 < 0.056 && depths.1 > 0.104, "{depths:?}");
        println!("200 targets; refused draws: {refusals:?}");
    }

    #[test]
    fn an_unreachable_space_is_an_error_not_a_hang() {
        let g = geometry();
        // 100–110 mm deep at 80–85° from vertical: out of the body and beyond the pitch limit.
        let space = DesignSpace {
            angle: [80f64.to_radians(), 85f64.to_radians()],
            max_draws: 50,
            ..DesignSpace::default()
        };
        let e = draw_targets(3, 1, &space, &g).unwrap_err().to_string();
        assert!(e.contains("target 0") && e.contains("no draw of 50"), "{e}");
        let bad = DesignSpace {
            entry_x: [-0.2, 0.0],
            ..DesignSpace::default()
        };
        assert!(draw_targets(1, 1, &bad, &g)
            .unwrap_err()
            .to_string()
            .contains("beyond the body"));
    }

    #[test]
    fn the_robot_check_refuses_what_the_controller_would() {
        let (g, space) = (geometry(), DesignSpace::default());
        // The default configuration's plan is reachable; a 60° path is beyond the pitch and yaw headroom.
        let entry = g.patient.skin_above(&Point::xyz(0.035, 0.0, 0.0)).coords.coords;
        assert!(g.reach(&entry, &Vector3::new(0.02, -0.03, 0.01), &space).is_ok());
        let steep = entry + direction(60f64.to_radians(), 0.0).into_inner() * 0.08;
        assert!(g.reach(&entry, &steep, &space).is_err());
        // Deeper than the insertion joint allows.
        let deep = entry + Vector3::y() * 0.21;
        assert!(g.reach(&entry, &deep, &space).is_err());
    }
}
