//! The reference URDF is valid for ROS's own parser (`check_urdf` from urdfdom) and keeps the contracts other parts read:
//! the registration fiducials and physical dynamics parameters.

use std::process::Command;

const URDF_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf");

/// Acceptance 4: urdfdom's `check_urdf` (Debian `liburdfdom-tools`) accepts the file.
#[test]
fn check_urdf_accepts_positioner() {
    let out = match Command::new("check_urdf").arg(URDF_PATH).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run `check_urdf` ({e}); it comes from Debian's liburdfdom-tools: run launch/setup.sh (the project set-up \
             script) to install it"
        ),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check_urdf failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("Successfully Parsed XML"), "{stdout}");
    assert!(stdout.contains("root Link: robot_base"), "{stdout}");
    for link in ["needle_tip", "rcm", "fiducial_frame", "fiducial_7"] {
        assert!(stdout.contains(link), "check_urdf tree lacks {link}:\n{stdout}");
    }
}

/// The fiducial model other helpers read: eight spheres (r = 2 mm) on fixed joints of `fiducial_frame`, at these centres.
#[test]
fn fiducials_follow_the_registration_convention() {
    let robot = urdf_rs::read_file(URDF_PATH).unwrap();
    let frame = robot.joints.iter().find(|j| j.name == "fiducial_frame_joint").unwrap();
    assert_eq!(
        (frame.parent.link.as_str(), frame.child.link.as_str()),
        ("robot_base", "fiducial_frame")
    );
    assert_eq!(frame.joint_type, urdf_rs::JointType::Fixed);
    let centres_mm = [
        [0.0, 0.0, 0.0],
        [70.0, 0.0, 8.0],
        [0.0, 55.0, 15.0],
        [85.0, 60.0, 0.0],
        [25.0, 95.0, 30.0],
        [-35.0, 35.0, 40.0],
        [55.0, -30.0, 22.0],
        [105.0, 25.0, 45.0],
    ];
    for (i, c) in centres_mm.iter().enumerate() {
        let j = robot
            .joints
            .iter()
            .find(|j| j.name == format!("fiducial_{i}_joint"))
            .unwrap();
        assert_eq!(j.joint_type, urdf_rs::JointType::Fixed);
        assert_eq!(
            (j.parent.link.as_str(), j.child.link.clone()),
            ("fiducial_frame", format!("fiducial_{i}"))
        );
        for (a, (got, mm)) in j.origin.xyz.iter().zip(c).enumerate() {
            assert!((got - mm * 1e-3).abs() < 1e-12, "fiducial_{i} axis {a}");
        }
        let link = robot.links.iter().find(|l| l.name == format!("fiducial_{i}")).unwrap();
        let spheres = link
            .visual
            .iter()
            .map(|v| &v.geometry)
            .chain(link.collision.iter().map(|c| &c.geometry));
        let radii: Vec<f64> = spheres
            .map(|g| match g {
                urdf_rs::Geometry::Sphere { radius } => *radius,
                other => panic!("fiducial_{i} has {other:?}"),
            })
            .collect();
        assert_eq!(radii, vec![0.002, 0.002], "fiducial_{i}");
    }
}

/// Every moving link has a physical mass and a positive-definite inertia; every active joint has velocity and effort
/// limits (the simulator's drive dynamics use them).
#[test]
fn moving_links_have_dynamics_parameters() {
    let robot = urdf_rs::read_file(URDF_PATH).unwrap();
    for name in [
        "x_joint",
        "y_joint",
        "z_joint",
        "yaw_joint",
        "pitch_joint",
        "insertion_joint",
    ] {
        let j = robot.joints.iter().find(|j| j.name == name).unwrap();
        assert!(j.limit.velocity > 0.0 && j.limit.effort > 0.0, "{name}: {:?}", j.limit);
        let link = robot.links.iter().find(|l| l.name == j.child.link).unwrap();
        let m = link.inertial.mass.value;
        let i = &link.inertial.inertia;
        assert!(m > 0.05 && m < 20.0, "{name} child mass {m}");
        // Principal moments positive and satisfying the triangle inequality.
        assert!(i.ixx > 0.0 && i.iyy > 0.0 && i.izz > 0.0, "{name}: {i:?}");
        assert!(
            i.ixx + i.iyy >= i.izz && i.iyy + i.izz >= i.ixx && i.ixx + i.izz >= i.iyy,
            "{name}: {i:?}"
        );
    }
}
