//! Closed-form needle IK against `k`'s Jacobian IK on the same requests.
//!
//! `k` is set up as fairly as the mechanism allows. The positioner has no roll about the needle, so a full 6-D pose goal
//! has a rank-5 Jacobian; and `k`'s constraint flags are in the goal's world frame, so freeing base-frame `rotation_z` would
//! let yaw drift. Instead each request re-roots the chain in a frame W whose origin is the target and whose z is the needle
//! axis (W is the home tip orientation turned minimally onto the needle direction; it uses nothing of the answer), the goal is
//! the identity in W, and rotation about W's z is freed: 5 constraints on 6 joints, pseudo-inverse steps.
//! `k` is not told about the RCM (it has no notion of it): its tip lands on the target with the needle on the line, but the
//! RCM may slide along the line (insertion compensates) — the figure "RCM from entry" below measures that.
//!
//! Before the timings the bench prints `k`'s success rate, its RCM offsets and both solvers' mean time per solve.

use std::hint::black_box;
use std::time::Instant;

use acus_control::kinematics::{Joint, JointPositions, NeedleRequest, PositionerModel};
use criterion::{criterion_group, criterion_main, Criterion};
use k::{Constraints, InverseKinematicsSolver, JacobianIkSolver, SerialChain};
use nalgebra::{Isometry3, UnitQuaternion, Vector3};
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");
const REQUESTS: usize = 1000;

/// Reachable requests from joint vectors sampled inside the limits (RCM = entry, tip = target).
fn requests(model: &PositionerModel) -> Vec<NeedleRequest> {
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]);
    (0..REQUESTS)
        .map(|_| {
            let mut q = JointPositions::default();
            for j in Joint::ALL {
                let l = model.limit(j);
                let lower = if j == Joint::Insertion { 0.01 } else { l.lower };
                q.set(j, rng.random_range(lower..=l.upper));
            }
            let s = model.forward(&q);
            NeedleRequest {
                entry: s.rcm,
                target: s.tip,
            }
        })
        .collect()
}

/// `k`'s Jacobian IK on the URDF, set up as described in the file comment.
struct KBaseline {
    arm: SerialChain<f64>,
    solver: JacobianIkSolver<f64>,
    constraints: Constraints,
    start: Vec<f64>,
    home_direction: Vector3<f64>,
    home_tip: UnitQuaternion<f64>,
}

impl KBaseline {
    fn new(model: &PositionerModel) -> Self {
        let chain = k::Chain::<f64>::from(&urdf_rs::read_from_string(URDF).unwrap());
        let arm = SerialChain::from_end(chain.find_link("needle_tip").unwrap());
        // Start every solve from mid-range, the natural "home" a caller would use without a better guess.
        let start: Vec<f64> = Joint::ALL
            .iter()
            .map(|&j| {
                let l = model.limit(j);
                0.5 * (l.lower + l.upper)
            })
            .collect();
        let home = model.forward(&JointPositions::default());
        // k's defaults (1 mm, 0.005 rad, gain 0.5) but 100 iterations instead of 10, to give it every chance.
        let solver = JacobianIkSolver::new(0.001, 0.005, 0.5, 100);
        let constraints = Constraints {
            rotation_z: false,
            ..Constraints::default()
        };
        Self {
            arm,
            solver,
            constraints,
            start,
            home_direction: home.direction.into_inner(),
            home_tip: home.tip_orientation,
        }
    }

    fn solve(&self, req: &NeedleRequest) -> Option<JointPositions> {
        let d = (req.target.coords - req.entry.coords).normalize();
        let turn = UnitQuaternion::rotation_between(&self.home_direction, &d).unwrap_or_else(UnitQuaternion::identity);
        let t_base_w = Isometry3::from_parts(req.target.coords.coords.into(), turn * self.home_tip);
        self.arm.set_origin(t_base_w.inverse());
        self.arm.set_joint_positions_clamped(&self.start);
        self.solver
            .solve_with_constraints(&self.arm, &Isometry3::identity(), &self.constraints)
            .ok()?;
        let p = self.arm.joint_positions();
        Some(JointPositions::new(p[0], p[1], p[2], p[3], p[4], p[5]))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints the figures criterion cannot: success rates, accuracy, RCM offset, mean times and their ratio.
fn compare(model: &PositionerModel, reqs: &[NeedleRequest], kb: &KBaseline) {
    let (mut k_ok, mut rcm_off, mut k_tip_err, mut k_dir_err) = (0, Vec::new(), Vec::new(), Vec::new());
    let t0 = Instant::now();
    let k_solutions: Vec<_> = reqs.iter().map(|r| kb.solve(r)).collect();
    let k_time = t0.elapsed().as_secs_f64() / reqs.len() as f64;
    for (r, sol) in reqs.iter().zip(&k_solutions) {
        if let Some(q) = sol {
            k_ok += 1;
            let s = model.forward(q);
            rcm_off.push(s.rcm.distance(&r.entry));
            k_tip_err.push(s.tip.distance(&r.target));
            let line = r.target.coords - r.entry.coords;
            k_dir_err.push(s.direction.cross(&line).norm().atan2(s.direction.dot(&line)));
        }
    }
    let rounds = 200;
    let t0 = Instant::now();
    let mut cf_ok = 0;
    for _ in 0..rounds {
        for r in reqs {
            cf_ok += black_box(model.solve_needle(black_box(r))).is_ok() as usize;
        }
    }
    let cf_time = t0.elapsed().as_secs_f64() / (rounds * reqs.len()) as f64;
    let n = reqs.len() as f64;
    println!(
        "ik_compare: {} reachable requests (joint-space samples, insertion >= 10 mm)",
        reqs.len()
    );
    println!(
        "ik_compare: closed form: {:.1} % solved, mean {:.1} ns/solve",
        100.0 * cf_ok as f64 / (n * rounds as f64),
        cf_time * 1e9
    );
    println!(
        "ik_compare: k JacobianIkSolver: {:.1} % solved, mean {:.1} µs/solve (incl. failures); of its solutions: RCM from \
         entry median {:.1} mm (max {:.1} mm), tip error median {:.3} mm, needle off line median {:.4}°",
        100.0 * k_ok as f64 / n,
        k_time * 1e6,
        median(rcm_off.clone()) * 1e3,
        rcm_off.iter().cloned().fold(0.0, f64::max) * 1e3,
        median(k_tip_err) * 1e3,
        median(k_dir_err).to_degrees()
    );
    println!("ik_compare: speed-up closed form vs k: {:.0}x", k_time / cf_time);
}

fn bench(c: &mut Criterion) {
    let model = PositionerModel::from_urdf_str(URDF).unwrap();
    let reqs = requests(&model);
    let kb = KBaseline::new(&model);
    compare(&model, &reqs, &kb);

    let mut group = c.benchmark_group("needle_ik");
    let mut i = 0;
    group.bench_function("closed_form", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(model.solve_needle(black_box(&reqs[i])))
        })
    });
    let mut i = 0;
    group.bench_function("k_jacobian", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(kb.solve(black_box(&reqs[i])))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
