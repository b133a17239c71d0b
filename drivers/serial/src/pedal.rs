//! The enable pedal's line protocol (see the crate doc): framing with a bounded buffer, checksum and sequence checks.

/// Longest accepted line, bytes, CR LF included (a frame is at most 24).
pub const MAX_LINE: usize = 32;

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PedalError {
    /// The line exceeded [`MAX_LINE`] bytes before its LF.
    #[error("pedal line longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not of the form `$PED,<seq>,<H|R>*<XX>`.
    #[error("malformed pedal line")]
    Malformed,
    /// The XOR checksum does not match.
    #[error("pedal checksum {got:02X}, computed {want:02X}")]
    Checksum { got: u8, want: u8 },
}

/// One valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PedalFrame {
    /// Sequence number.
    pub seq: u32,
    /// Held (true) or released.
    pub held: bool,
}

/// XOR of the bytes between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |a, b| a ^ b)
}

/// The line for a frame, CR LF included.
pub fn encode(frame: PedalFrame) -> String {
    let body = format!("PED,{},{}", frame.seq, if frame.held { 'H' } else { 'R' });
    format!("${body}*{:02X}\r\n", checksum(body.as_bytes()))
}

/// Parse one line (without its LF; a trailing CR is allowed).
pub fn parse_line(line: &[u8]) -> Result<PedalFrame, PedalError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(PedalError::TooLong);
    }
    let rest = line.strip_prefix(b"$").ok_or(PedalError::Malformed)?;
    let star = rest.iter().position(|&b| b == b'*').ok_or(PedalError::Malformed)?;
    let (body, sum) = (&rest[..star], &rest[star + 1..]);
    if sum.len() != 2 || !sum.iter().all(u8::is_ascii_hexdigit) {
        return Err(PedalError::Malformed);
    }
    let got = std::str::from_utf8(sum)
        .ok()
        .and_then(|s| u8::from_str_radix(s, 16).ok())
        .ok_or(PedalError::Malformed)?;
    let want = checksum(body);
    if got != want {
        return Err(PedalError::Checksum { got, want });
    }
    let text = std::str::from_utf8(body).map_err(|_| PedalError::Malformed)?;
    let mut f = text.split(',');
    let (Some("PED"), Some(seq), Some(state), None) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err(PedalError::Malformed);
    };
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PedalError::Malformed);
    }
    let seq = seq.parse().map_err(|_| PedalError::Malformed)?;
    let held = match state {
        "H" => true,
        "R" => false,
        _ => return Err(PedalError::Malformed),
    };
    Ok(PedalFrame { seq, held })
}

/// Bounded line framer: feed bytes, get a result per completed line. An over-long line is reported once and skipped
/// up to its LF, so garbage cannot grow memory or be glued onto the next frame.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    overflow: bool,
}

impl LineBuffer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one byte; `Some` when it completed a line.
    pub fn push(&mut self, b: u8) -> Option<Result<PedalFrame, PedalError>> {
        if b == b'\n' {
            let r = if self.overflow {
                Err(PedalError::TooLong)
            } else {
                parse_line(&self.buf)
            };
            self.buf.clear();
            self.overflow = false;
            return Some(r);
        }
        if self.overflow {
            return None;
        }
        if self.buf.len() >= MAX_LINE {
            self.buf.clear();
            self.overflow = true;
            return None;
        }
        self.buf.push(b);
        None
    }
}

/// Sequence check: a frame is fresh when its seq differs from the last one accepted (a replayed or stuck frame is not).
#[derive(Debug, Default)]
pub struct SeqCheck {
    last: Option<u32>,
}

impl SeqCheck {
    /// True when `seq` is new; remembers it.
    pub fn accept(&mut self, seq: u32) -> bool {
        let fresh = self.last != Some(seq);
        self.last = Some(seq);
        fresh
    }
}

/// What [`SeqFollow`] makes of one frame's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Exactly one more than the previous frame (wrapping): the sender is alive and nothing was lost.
    Next,
    /// No previous frame to compare with (just opened, or after a gap): this frame only re-synchronises.
    First,
    /// Same number as the previous frame: a stuck or replayed sender.
    Repeat,
    /// Frames were lost or reordered; `expected` is what [`SeqVerdict::Next`] would have been.
    Gap {
        /// The number that was expected.
        expected: u32,
    },
}

/// Strict sequence follower for the reader: only a frame numbered previous + 1 is in sequence. Stricter than
/// [`SeqCheck`] on purpose: a frame after a repeat or a gap is not trusted until the next one follows it, so a
/// re-opened port or a replaying sender costs one frame period of "released", never a stale "held".
#[derive(Debug, Default)]
pub struct SeqFollow {
    last: Option<u32>,
}

impl SeqFollow {
    /// Judge `seq` and remember it (a repeat or gap re-synchronises on it).
    pub fn check(&mut self, seq: u32) -> SeqVerdict {
        let verdict = match self.last {
            None => SeqVerdict::First,
            Some(last) if last == seq => SeqVerdict::Repeat,
            Some(last) if last.wrapping_add(1) == seq => SeqVerdict::Next,
            Some(last) => SeqVerdict::Gap {
                expected: last.wrapping_add(1),
            },
        };
        self.last = Some(seq);
        verdict
    }

    /// Forget the previous frame (on every (re)open).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        for held in [true, false] {
            let f = PedalFrame {
                seq: 4_000_000_000,
                held,
            };
            let line = encode(f);
            assert!(line.len() <= MAX_LINE);
            let mut lb = LineBuffer::new();
            let out: Vec<_> = line.bytes().filter_map(|b| lb.push(b)).collect();
            assert_eq!(out, vec![Ok(f)]);
        }
        assert!(matches!(parse_line(b"$PED,1,H*00"), Err(PedalError::Checksum { .. })));
        assert_eq!(parse_line(b"$PED,1,X*38"), Err(PedalError::Malformed));
        assert_eq!(parse_line(b"garbage"), Err(PedalError::Malformed));
        let mut lb = LineBuffer::new();
        let long = [b'A'; 100];
        let out: Vec<_> = long
            .iter()
            .chain(b"\n")
            .chain(encode(PedalFrame { seq: 2, held: true }).as_bytes())
            .filter_map(|&b| lb.push(b))
            .collect();
        assert_eq!(
            out,
            vec![Err(PedalError::TooLong), Ok(PedalFrame { seq: 2, held: true })]
        );
        let mut s = SeqCheck::default();
        assert!(s.accept(1) && !s.accept(1) && s.accept(2));
        let mut f = SeqFollow::default();
        assert_eq!(f.check(u32::MAX), SeqVerdict::First);
        assert_eq!(f.check(0), SeqVerdict::Next);
        assert_eq!(f.check(0), SeqVerdict::Repeat);
        assert_eq!(f.check(5), SeqVerdict::Gap { expected: 1 });
        assert_eq!(f.check(6), SeqVerdict::Next);
        f.reset();
        assert_eq!(f.check(7), SeqVerdict::First);
    }
}
