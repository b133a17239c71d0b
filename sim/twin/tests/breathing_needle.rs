//! The needle in a breathing organ. The tissue slides under the skin entry with each breath and bends the shaft; a
//! breath out and back leaves the needle as it was, however finely or coarsely the twin looks at it (the simulated
//! clock may sync the patient only a few times per breath), and only insertion at another breathing level than the one
//! the needle was aimed at turns the track it cuts.

use acus_control::kinematics::{Joint, JointPositions, NeedleRequest, PositionerModel};
use acus_sim_twin::patient::{Patient, PatientConfig};
use nalgebra::Vector3;

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

/// Joint positions with the needle on the line from the entry above the lesion to the lesion, inserted to `insertion`.
fn pose(config: &PatientConfig, insertion: f64) -> JointPositions {
    let model = PositionerModel::from_urdf_str(URDF).unwrap();
    let t_robot_ct = config.t_ct_robot.inverse();
    let entry = config.skin_above(&config.lesion);
    let mut q = model
        .solve_needle(&NeedleRequest {
            entry: t_robot_ct.apply(&entry),
            target: t_robot_ct.apply(&config.lesion),
        })
        .unwrap();
    q.set(Joint::Insertion, insertion);
    q
}

/// The organ's displacement at phase `phase` (rad) of a 12 mm breath (craniocaudal, a third of it anterior).
fn organ(phase: f64) -> Vector3<f64> {
    let cc = 0.006 * (1.0 - phase.cos());
    Vector3::new(0.0, 0.3 * cc, cc)
}

fn tip(p: &Patient) -> Vector3<f64> {
    p.tip().unwrap().coords.coords
}

/// A patient that never breathed, its needle inserted to `depth` and then to `further`.
fn still(config: &PatientConfig, depth: f64, further: f64) -> Patient {
    let mut p = Patient::ideal(config.clone(), URDF).unwrap();
    p.sync(&pose(config, 0.0)).unwrap();
    p.sync(&pose(config, depth)).unwrap();
    p.sync(&pose(config, further)).unwrap();
    p
}

#[test]
fn breaths_out_and_back_leave_the_needle_as_it_was_whatever_the_sync_rate() {
    let config = PatientConfig::reference();
    // Barely in (held by the guide), half a lever in, and deep.
    for depth in [0.005, 0.02, 0.06] {
        for syncs_per_breath in [4usize, 8, 80] {
            let mut p = Patient::ideal(config.clone(), URDF).unwrap();
            p.sync(&pose(&config, 0.0)).unwrap();
            let q = pose(&config, depth);
            p.sync_breathing(&q, Vector3::zeros()).unwrap();
            let before = tip(&p);
            let mut widest: f64 = 0.0;
            for _ in 0..10 {
                for k in 1..=syncs_per_breath {
                    let d = organ(k as f64 / syncs_per_breath as f64 * std::f64::consts::TAU);
                    p.sync_breathing(&q, d).unwrap();
                    // The inserted part rides with the organ.
                    widest = widest.max((tip(&p) - d - before).norm());
                }
            }
            assert!(widest < 1e-9, "the tip left the organ by {widest} m");
            // 30 mm further at the level it was aimed at: the same track as a patient that never breathed (before
            // the bend was a function of the entry's place, 10 breaths seen 4 times each put it 18 mm away).
            p.sync_breathing(&pose(&config, depth + 0.03), Vector3::zeros())
                .unwrap();
            let off = (tip(&p) - tip(&still(&config, depth, depth + 0.03))).norm();
            println!(
                "{depth} m in, {syncs_per_breath} syncs per breath: {:.2e} m from the still patient's tip",
                off
            );
            assert!(
                off < 1e-9,
                "{depth} m in, {syncs_per_breath} syncs per breath: {off} m off"
            );
        }
    }
}

#[test]
fn inserting_at_another_breathing_level_turns_the_track() {
    let config = PatientConfig::reference();
    let depth = 0.02;
    let mut p = Patient::ideal(config.clone(), URDF).unwrap();
    p.sync(&pose(&config, 0.0)).unwrap();
    p.sync(&pose(&config, depth)).unwrap();
    // The next 30 mm cut with the organ held 1.5 mm cranially of the level the needle was aimed at.
    let held = Vector3::new(0.0, 0.0, 0.0015);
    p.sync_breathing(&pose(&config, depth), held).unwrap();
    p.sync_breathing(&pose(&config, depth + 0.03), held).unwrap();
    p.sync_breathing(&pose(&config, depth + 0.03), Vector3::zeros())
        .unwrap();
    let off = (tip(&p) - tip(&still(&config, depth, depth + 0.03))).norm();
    // The entry moved 1.5 mm seen from 30 mm (the least lever): the heading turned by about 1.5/30 rad, which over
    // the 30 mm cut is about 1.5 mm; the organ back at its level bends the shaft back by about the same angle, and the
    // track stays.
    println!(
        "30 mm cut 1.5 mm off the aimed level: {:.3} mm from the still patient's tip",
        off * 1e3
    );
    assert!(off > 1.2e-3 && off < 1.8e-3, "{off} m");
}

/// A withdrawal during free breathing (a redirect's, which the procedure does not gate) puts the shaft back in the track
/// it cut: once the organ is back at the level the track was cut at, the needle lies as a still patient's, and the
/// redirected insertion from there cuts the same track, however often the twin looked on the way out.
#[test]
fn a_withdrawal_in_free_breathing_leaves_no_bend_behind() {
    let config = PatientConfig::reference();
    let (deep, shallow, again) = (0.06, 0.015, 0.045);
    let mut still = Patient::ideal(config.clone(), URDF).unwrap();
    for depth in [0.0, deep, shallow, again] {
        still.sync(&pose(&config, depth)).unwrap();
    }
    for syncs_per_breath in [4usize, 8, 80] {
        let mut p = Patient::ideal(config.clone(), URDF).unwrap();
        p.sync(&pose(&config, 0.0)).unwrap();
        p.sync(&pose(&config, deep)).unwrap();
        // Out to 15 mm over 10 breaths, the last look mid-breath (the organ 6 mm cranial).
        let looks = 10 * syncs_per_breath + syncs_per_breath / 4;
        for k in 1..=looks {
            let depth = deep + (shallow - deep) * k as f64 / looks as f64;
            let d = organ(k as f64 / syncs_per_breath as f64 * std::f64::consts::TAU);
            p.sync_breathing(&pose(&config, depth), d).unwrap();
        }
        // Back at the level, in again.
        p.sync_breathing(&pose(&config, shallow), Vector3::zeros()).unwrap();
        p.sync_breathing(&pose(&config, again), Vector3::zeros()).unwrap();
        let off = (tip(&p) - tip(&still)).norm();
        let turned = p.needle().unwrap().heading().angle(&still.needle().unwrap().heading());
        println!(
            "{syncs_per_breath} syncs per breath: {:.2e} m from the still patient's tip, heading {:.2e} rad",
            off, turned
        );
        assert!(
            off < 1e-9 && turned < 1e-9,
            "{syncs_per_breath} syncs per breath: {off} m, {turned} rad"
        );
    }
}
