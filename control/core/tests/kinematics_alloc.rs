//! The IK and FK allocate nothing, on the success path and on every failure path (they may run in the 1 kHz cycle).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use acus_control::frames::Point;
use acus_control::kinematics::{JointPositions, NeedleRequest, PositionerModel};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn solve_and_forward_do_not_allocate() {
    let model = PositionerModel::from_urdf_str(include_str!("../../../urdf/positioner.urdf")).unwrap();
    let ok = {
        let s = model.forward(&JointPositions::new(0.02, -0.03, 0.07, 0.4, -0.3, 0.09));
        NeedleRequest {
            entry: s.rcm,
            target: s.tip,
        }
    };
    let e = Point::xyz(0.0, 0.30, 0.21);
    let requests = [
        ok,
        NeedleRequest {
            entry: Point::xyz(0.5, 0.30, 0.21),
            target: Point::xyz(0.5, 0.30, 0.1),
        }, // stage x
        NeedleRequest {
            entry: e,
            target: Point::xyz(0.0, 0.40, 0.12),
        }, // pitch
        NeedleRequest {
            entry: e,
            target: Point::xyz(0.05, 0.31, 0.15),
        }, // yaw
        NeedleRequest {
            entry: e,
            target: Point::xyz(0.0, 0.30, 0.25),
        }, // behind
        NeedleRequest {
            entry: e,
            target: Point::xyz(0.0, 0.30, -0.1),
        }, // insertion
        NeedleRequest { entry: e, target: e }, // zero axis
        NeedleRequest {
            entry: Point::xyz(f64::NAN, 0.0, 0.0),
            target: e,
        }, // NaN
    ];
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut outcomes = [false; 8];
    for (r, o) in requests.iter().zip(outcomes.iter_mut()) {
        *o = model.solve_needle(r).is_ok();
        std::hint::black_box(model.forward(&JointPositions::new(0.0, 0.0, 0.0, 0.1, 0.2, 0.05)));
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(outcomes, [true, false, false, false, false, false, false, false]);
    assert_eq!(after - before, 0, "solve_needle/forward allocated");
}
