//! Frame-level protocol checks of the emulated line: addressing modes, working counters, AL
//! state machine status codes, SII access, return bit, fault injection.

use acus_sim_ecat::network::{PRODUCT_CODE, VENDOR_ID};
use acus_sim_ecat::{DriveParams, Faults, Network};

/// One datagram: command, 32-bit address field, data.
struct Dg(u8, u32, Vec<u8>);

fn frame(dgs: &[Dg]) -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&[0x10; 6]);
    f.extend_from_slice(&0x88A4u16.to_be_bytes());
    let mut body = Vec::new();
    for (k, d) in dgs.iter().enumerate() {
        body.push(d.0);
        body.push(k as u8);
        body.extend_from_slice(&d.1.to_le_bytes());
        let more = if k + 1 < dgs.len() { 0x8000 } else { 0 };
        body.extend_from_slice(&((d.2.len() as u16) | more).to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&d.2);
        body.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(&((body.len() as u16) | 0x1000).to_le_bytes());
    f.extend_from_slice(&body);
    f
}

/// (data, wkc) of each datagram in a returned frame.
fn parse(f: &[u8]) -> Vec<(Vec<u8>, u16)> {
    let mut out = Vec::new();
    let mut off = 16;
    loop {
        let len = usize::from(u16::from_le_bytes([f[off + 6], f[off + 7]]) & 0x07FF);
        let more = f[off + 7] & 0x80 != 0;
        let data = f[off + 10..off + 10 + len].to_vec();
        let wkc = u16::from_le_bytes([f[off + 10 + len], f[off + 11 + len]]);
        out.push((data, wkc));
        off += 12 + len;
        if !more {
            return out;
        }
    }
}

fn send(net: &mut Network, dgs: &[Dg]) -> Vec<(Vec<u8>, u16)> {
    let mut f = frame(dgs);
    assert!(net.process_frame(&mut f), "frame lost");
    assert_eq!(f[6] & 0x02, 0x02, "return bit set in the source MAC");
    parse(&f)
}

fn fp(station: u16, reg: u16) -> u32 {
    u32::from(station) | (u32::from(reg) << 16)
}

fn ap(position: u16, reg: u16) -> u32 {
    u32::from(0u16.wrapping_sub(position)) | (u32::from(reg) << 16)
}

fn line(n: usize) -> Network {
    let mut net = Network::new(&vec![DriveParams::default(); n]).unwrap();
    for i in 0..n as u16 {
        let r = send(&mut net, &[Dg(2, ap(i, 0x0010), (0x1000 + i).to_le_bytes().to_vec())]);
        assert_eq!(r[0].1, 1, "APWR station address at position {i}");
    }
    net
}

#[test]
fn broadcast_auto_increment_and_configured_addressing() {
    let mut net = line(3);
    let r = send(
        &mut net,
        &[
            Dg(7, 0x0000_0000, vec![0]),
            Dg(4, fp(0x1001, 0x0010), vec![0, 0]),
            Dg(4, fp(0x7777, 0x0010), vec![0, 0]),
        ],
    );
    assert_eq!(r[0], (vec![0x11], 3), "BRD type: every device ORs and counts");
    assert_eq!(r[1], (vec![0x01, 0x10], 1), "FPRD reaches station 0x1001");
    assert_eq!(r[2].1, 0, "no station 0x7777");
    let r = send(&mut net, &[Dg(1, ap(2, 0x0010), vec![0, 0])]);
    assert_eq!(r[0], (vec![0x02, 0x10], 1), "APRD position 2");
}

#[test]
fn al_state_machine_rejects_bad_transitions_with_codes() {
    let mut net = line(1);
    let s = 0x1000;
    // INIT → OP is not a valid transition: error flag + 0x0011.
    send(&mut net, &[Dg(5, fp(s, 0x0120), vec![0x08, 0])]);
    let r = send(
        &mut net,
        &[Dg(4, fp(s, 0x0130), vec![0; 2]), Dg(4, fp(s, 0x0134), vec![0; 2])],
    );
    assert_eq!(r[0].0, vec![0x11, 0], "INIT with error indication");
    assert_eq!(r[1].0, vec![0x11, 0], "AL status code 0x0011");
    // A new request without acknowledge is ignored while the error stands.
    send(&mut net, &[Dg(5, fp(s, 0x0120), vec![0x02, 0])]);
    assert_eq!(send(&mut net, &[Dg(4, fp(s, 0x0130), vec![0; 2])])[0].0, vec![0x11, 0]);
    // Acknowledge + PRE-OP without mailbox sync managers: 0x0016 invalid mailbox configuration.
    send(&mut net, &[Dg(5, fp(s, 0x0120), vec![0x12, 0])]);
    let r = send(
        &mut net,
        &[Dg(4, fp(s, 0x0130), vec![0; 2]), Dg(4, fp(s, 0x0134), vec![0; 2])],
    );
    assert_eq!((r[0].0.clone(), r[1].0.clone()), (vec![0x11, 0], vec![0x16, 0]));
    // Configure SM0/SM1 as the SII says, acknowledge, PRE-OP succeeds.
    let sm = |start: u16, ctrl: u8| {
        let mut v = start.to_le_bytes().to_vec();
        v.extend_from_slice(&128u16.to_le_bytes());
        v.extend_from_slice(&[ctrl, 0, 1, 0]);
        v
    };
    send(
        &mut net,
        &[
            Dg(5, fp(s, 0x0800), sm(0x1000, 0x26)),
            Dg(5, fp(s, 0x0808), sm(0x1080, 0x22)),
        ],
    );
    send(&mut net, &[Dg(5, fp(s, 0x0120), vec![0x12, 0])]);
    assert_eq!(send(&mut net, &[Dg(4, fp(s, 0x0130), vec![0; 2])])[0].0, vec![0x02, 0]);
    // PRE-OP → SAFE-OP with process-data SMs not matching the PDO mapping: 0x001D.
    send(&mut net, &[Dg(5, fp(s, 0x0120), vec![0x04, 0])]);
    let r = send(
        &mut net,
        &[Dg(4, fp(s, 0x0130), vec![0; 2]), Dg(4, fp(s, 0x0134), vec![0; 2])],
    );
    assert_eq!((r[0].0.clone(), r[1].0.clone()), (vec![0x12, 0], vec![0x1D, 0]));
}

#[test]
fn sii_reads_identity_eight_bytes_at_a_time() {
    let mut net = line(2);
    // Control: read (bit 8), address word 0x0008 (vendor, product).
    let req = vec![0x00, 0x01, 0x08, 0x00, 0x00, 0x00];
    send(&mut net, &[Dg(5, fp(0x1001, 0x0502), req)]);
    let r = send(
        &mut net,
        &[
            Dg(4, fp(0x1001, 0x0502), vec![0; 2]),
            Dg(4, fp(0x1001, 0x0508), vec![0; 8]),
        ],
    );
    assert_eq!(r[0].0[1] & 0x80, 0, "not busy");
    assert_eq!(r[0].0[0] & 0x40, 0x40, "8-byte reads");
    assert_eq!(u32::from_le_bytes(r[1].0[0..4].try_into().unwrap()), VENDOR_ID);
    assert_eq!(u32::from_le_bytes(r[1].0[4..8].try_into().unwrap()), PRODUCT_CODE);
}

#[test]
fn faults_drop_frames_and_hide_devices() {
    let mut net = line(3);
    net.set_faults(Faults {
        missing: Some(1),
        ..Faults::default()
    });
    assert_eq!(
        send(&mut net, &[Dg(7, 0, vec![0])])[0].1,
        2,
        "missing device does not count"
    );
    net.set_faults(Faults {
        link_down: true,
        ..Faults::default()
    });
    let mut f = frame(&[Dg(7, 0, vec![0])]);
    assert!(!net.process_frame(&mut f));
    net.set_faults(Faults {
        drop_percent: 10,
        ..Faults::default()
    });
    let mut lost = 0;
    for _ in 0..2000 {
        let mut f = frame(&[Dg(7, 0, vec![0])]);
        lost += usize::from(!net.process_frame(&mut f));
    }
    assert!((120..=280).contains(&lost), "10 % of 2000 frames dropped, got {lost}");
    assert_eq!(net.dropped() as usize, lost + 1);
}
