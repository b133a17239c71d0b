//! A check scan is used only in the planning scan's frame of reference: series written by the virtual scanner as a
//! scanner writes them (one study, one frame of reference per patient on the table) pass; a series of another frame
//! of reference, or one that names none, is refused with both UIDs named. Real DICOM files, read back by acus-dicom.

use acus_control::frames::Point;
use acus_executive::check::same_frame_of_reference;
use acus_executive::CheckScanError;
use acus_sim_scanner::{scan, write_series, ScanProtocol, Scene, SeriesInfo, Shape};
use nalgebra::{Point3, Vector3};

fn series(dir: &std::path::Path, info: &SeriesInfo) -> Option<String> {
    let mut scene = Scene::new();
    scene.add(
        Shape::Sphere {
            center: Point3::origin(),
            radius: 0.01,
        },
        40.0,
    );
    let m = Vector3::repeat(0.012);
    let protocol = ScanProtocol::covering(
        Point::new(Point3::origin() - m),
        Point::new(Point3::origin() + m),
        1e-3,
        2e-3,
        2e-3,
    );
    let volume = scan(&scene, &protocol).expect("scan");
    write_series(&volume, dir, info).expect("series written");
    let (_, report) = acus_dicom::read_ct_series(dir).expect("series read back");
    report.frame_of_reference_uid
}

#[test]
fn a_check_scan_of_another_frame_of_reference_is_refused_naming_both() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = SeriesInfo::new("planning", 1);
    let planning = series(&tmp.path().join("planning"), &study).expect("the planning scan names its frame");
    let same = SeriesInfo {
        study_uid: study.study_uid.clone(),
        frame_of_reference_uid: study.frame_of_reference_uid.clone(),
        ..SeriesInfo::new("check 1", 2)
    };
    let check = series(&tmp.path().join("check"), &same);
    assert_eq!(check.as_deref(), Some(planning.as_str()));
    assert!(same_frame_of_reference(Some(&planning), check.as_deref()).is_ok());

    // Another study on the same scanner: a new frame of reference.
    let other = series(&tmp.path().join("other"), &SeriesInfo::new("check 2", 3)).expect("named");
    assert_ne!(other, planning);
    match same_frame_of_reference(Some(&planning), Some(&other)) {
        Err(e @ CheckScanError::FrameOfReference { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&planning) && text.contains(&other), "{text}");
        }
        r => panic!("not refused: {r:?}"),
    }
    // A series that names no frame of reference cannot be placed either.
    assert!(matches!(
        same_frame_of_reference(Some(&planning), None),
        Err(CheckScanError::FrameOfReference { .. })
    ));
    // Without a planning scan of its own, the procedure has nothing to compare.
    assert!(same_frame_of_reference(None, Some(&other)).is_ok());
}

mod common;

/// The whole procedure: a check scan that comes back in another frame of reference stops the step's analysis with the
/// typed refusal, and the needle stays where the step left it.
#[test]
fn the_procedure_refuses_a_check_scan_of_another_frame_of_reference() {
    let b = common::bench();
    b.scanner
        .check_in_another_frame
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let console = common::console(b.estop, b.deadman);
        let mut running = acus_executive::Executive::start(b.settings, b.motion.clone(), b.scanner.clone());
        let exec = running.executive.clone();
        common::ready_to_insert(&exec, b.out.path(), &b.fiducials).await;
        let step = exec.request(acus_executive::Op::InsertStep).await;
        println!("{}", step.text);
        assert!(
            !step.ok && step.text.contains("another frame of reference"),
            "{}",
            step.text
        );
        let mut refused = false;
        while let Ok(report) = running.reports.try_recv() {
            if let acus_executive::Report::Fault(acus_executive::ExecutiveFault::CheckScan {
                error: CheckScanError::FrameOfReference { .. },
                ..
            }) = report
            {
                refused = true;
            }
        }
        assert!(refused, "the refusal is reported typed");
        console.abort();
    });
}
