//! Message bodies (TRANSFORM, POINT, STRING, STATUS, IMAGE), the v2/v3 extended header and metadata.
//!
//! Decoding reads through [`Cursor`], which checks every length against the bytes present, so no wire value indexes
//! or allocates beyond the body it came with.
use crate::header::{crc64, fixed_str, put_fixed, Header, IgtlError, Limits, HEADER_SIZE};
use nalgebra::{Matrix4, Point3, Vector3};

/// IANA MIBenum values OpenIGTLink uses for text.
pub const ENCODING_ASCII: u16 = 3;
pub const ENCODING_UTF8: u16 = 106;

/// One decoded (or to-be-sent) message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub device_name: String,
    pub timestamp: u64,
    pub body: Body,
    /// v2/v3 metadata (dropped when sent as v1).
    pub metadata: Vec<MetaEntry>,
    pub message_id: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetaEntry {
    pub key: String,
    pub encoding: u16,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A homogeneous transform in the wire frame (Slicer: RAS, mm).
    Transform(Matrix4<f64>),
    Point(Vec<PointItem>),
    String(IgtlString),
    Status(Status),
    Image(Image),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointItem {
    pub name: String,
    pub group: String,
    pub rgba: [u8; 4],
    /// Wire frame (Slicer: RAS, mm).
    pub position: Point3<f64>,
    pub diameter: f64,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IgtlString {
    pub encoding: u16,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// 1 = OK, 0 = invalid, 2 = unknown error, ... (OpenIGTLink STATUS codes).
    pub code: u16,
    pub subcode: i64,
    pub error_name: String,
    pub status_string: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    I8 = 2,
    U8 = 3,
    I16 = 4,
    U16 = 5,
    I32 = 6,
    U32 = 7,
    F32 = 10,
    F64 = 11,
}

impl ScalarType {
    pub fn bytes(self) -> usize {
        match self {
            ScalarType::I8 | ScalarType::U8 => 1,
            ScalarType::I16 | ScalarType::U16 => 2,
            ScalarType::I32 | ScalarType::U32 | ScalarType::F32 => 4,
            ScalarType::F64 => 8,
        }
    }
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            2 => ScalarType::I8,
            3 => ScalarType::U8,
            4 => ScalarType::I16,
            5 => ScalarType::U16,
            6 => ScalarType::I32,
            7 => ScalarType::U32,
            10 => ScalarType::F32,
            11 => ScalarType::F64,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinate {
    Ras = 1,
    Lps = 2,
}

/// IMAGE (image header v1). `ijk_to_world` maps voxel indices to the world point of voxel (i, j, k); on the wire the
/// translation is the centre of the volume, `M * (size - 1) / 2`, as Slicer and pyigtl write it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub components: u8,
    pub scalar_type: ScalarType,
    /// Byte order of `pixels` (true: big endian).
    pub big_endian: bool,
    pub coordinate: Coordinate,
    pub size: [u16; 3],
    pub ijk_to_world: Matrix4<f64>,
    pub subvolume_offset: [u16; 3],
    pub subvolume_size: [u16; 3],
    /// Voxels of the subvolume, i fastest.
    pub pixels: Vec<u8>,
}

impl Image {
    /// Bytes the pixel block must have; `None` on overflow.
    pub fn expected_pixel_bytes(&self) -> Option<usize> {
        self.subvolume_size
            .iter()
            .try_fold(usize::from(self.components), |acc, &n| acc.checked_mul(usize::from(n)))?
            .checked_mul(self.scalar_type.bytes())
    }
}

impl Body {
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Transform(_) => "TRANSFORM",
            Body::Point(_) => "POINT",
            Body::String(_) => "STRING",
            Body::Status(_) => "STATUS",
            Body::Image(_) => "IMAGE",
        }
    }
}

/// Bounds-checked big-endian reader over a byte slice.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Cursor { data, what }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], IgtlError> {
        if n > self.data.len() {
            return Err(IgtlError::Truncated {
                what: self.what,
                need: n as u64,
                have: self.data.len() as u64,
            });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], IgtlError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, IgtlError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, IgtlError> {
        self.array().map(u16::from_be_bytes)
    }
    pub(crate) fn u32(&mut self) -> Result<u32, IgtlError> {
        self.array().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, IgtlError> {
        self.array().map(i64::from_be_bytes)
    }
    fn f32(&mut self) -> Result<f64, IgtlError> {
        self.array().map(|a| f64::from(f32::from_be_bytes(a)))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
    fn remaining(&self) -> usize {
        self.data.len()
    }
}

fn decode_text(bytes: &[u8], encoding: u16) -> Result<String, IgtlError> {
    match encoding {
        ENCODING_ASCII if bytes.is_ascii() => Ok(String::from_utf8_lossy(bytes).into_owned()),
        ENCODING_UTF8 => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| IgtlError::BadText { encoding }),
        _ => Err(IgtlError::BadText { encoding }),
    }
}

fn text_encoding(text: &str) -> u16 {
    if text.is_ascii() {
        ENCODING_ASCII
    } else {
        ENCODING_UTF8
    }
}

const POINT_ITEM: usize = 64 + 32 + 4 + 12 + 4 + 20;

/// Decode a content block (the body minus extended header and metadata) of a known type.
pub fn decode_content(type_name: &str, content: &[u8]) -> Result<Body, IgtlError> {
    match type_name {
        "TRANSFORM" => {
            let mut c = Cursor::new(content, "TRANSFORM");
            let mut v = [0f64; 12];
            for x in v.iter_mut() {
                *x = c.f32()?;
            }
            // Rotation columns (R11 R21 R31, R12 ...), then translation.
            let mut m = Matrix4::identity();
            for col in 0..4 {
                for row in 0..3 {
                    m[(row, col)] = v[col * 3 + row];
                }
            }
            Ok(Body::Transform(m))
        }
        "POINT" => {
            if content.is_empty() || !content.len().is_multiple_of(POINT_ITEM) {
                return Err(IgtlError::Malformed {
                    type_name: "POINT",
                    problem: "length not a positive multiple of 136",
                });
            }
            let mut c = Cursor::new(content, "POINT");
            let mut items = Vec::with_capacity(content.len() / POINT_ITEM);
            while c.remaining() > 0 {
                let name = fixed_str(c.take(64)?);
                let group = fixed_str(c.take(32)?);
                let rgba = c.array::<4>()?;
                let position = Point3::new(c.f32()?, c.f32()?, c.f32()?);
                let diameter = c.f32()?;
                let owner = fixed_str(c.take(20)?);
                items.push(PointItem {
                    name,
                    group,
                    rgba,
                    position,
                    diameter,
                    owner,
                });
            }
            Ok(Body::Point(items))
        }
        "STRING" => {
            let mut c = Cursor::new(content, "STRING");
            let encoding = c.u16()?;
            let len = c.u16()?;
            let text = decode_text(c.take(usize::from(len))?, encoding)?;
            Ok(Body::String(IgtlString { encoding, text }))
        }
        "STATUS" => {
            let mut c = Cursor::new(content, "STATUS");
            let code = c.u16()?;
            let subcode = c.i64()?;
            let error_name = fixed_str(c.take(20)?);
            let status_string = fixed_str(c.rest());
            Ok(Body::Status(Status {
                code,
                subcode,
                error_name,
                status_string,
            }))
        }
        "IMAGE" => decode_image(content).map(Body::Image),
        other => Err(IgtlError::UnknownType(other.to_owned())),
    }
}

fn decode_image(content: &[u8]) -> Result<Image, IgtlError> {
    let bad = |problem| IgtlError::Malformed {
        type_name: "IMAGE",
        problem,
    };
    let mut c = Cursor::new(content, "IMAGE header");
    if c.u16()? != 1 {
        return Err(bad("image header version is not 1"));
    }
    let components = c.u8()?;
    let scalar_type = ScalarType::from_u8(c.u8()?).ok_or(bad("unknown scalar type"))?;
    let big_endian = match c.u8()? {
        1 => true,
        2 => false,
        _ => return Err(bad("endian is neither 1 nor 2")),
    };
    let coordinate = match c.u8()? {
        1 => Coordinate::Ras,
        2 => Coordinate::Lps,
        _ => return Err(bad("coordinate is neither 1 (RAS) nor 2 (LPS)")),
    };
    let size = [c.u16()?, c.u16()?, c.u16()?];
    let mut m = Matrix4::identity();
    for col in 0..4 {
        for row in 0..3 {
            m[(row, col)] = c.f32()?;
        }
    }
    let subvolume_offset = [c.u16()?, c.u16()?, c.u16()?];
    let subvolume_size = [c.u16()?, c.u16()?, c.u16()?];
    for a in 0..3 {
        if u32::from(subvolume_offset[a]) + u32::from(subvolume_size[a]) > u32::from(size[a]) {
            return Err(bad("subvolume exceeds the image"));
        }
    }
    if components == 0 {
        return Err(bad("zero components"));
    }
    // Wire translation is the volume centre; move it to voxel (0, 0, 0).
    let half = Vector3::from_fn(|a, _| (f64::from(size[a]) - 1.0) / 2.0);
    let centre = m.fixed_slice::<3, 1>(0, 3).into_owned();
    let origin = centre - m.fixed_slice::<3, 3>(0, 0) * half;
    m.fixed_slice_mut::<3, 1>(0, 3).copy_from(&origin);
    let mut image = Image {
        components,
        scalar_type,
        big_endian,
        coordinate,
        size,
        ijk_to_world: m,
        subvolume_offset,
        subvolume_size,
        pixels: Vec::new(),
    };
    let expected = image.expected_pixel_bytes().ok_or(bad("pixel count overflows"))?;
    let rest = c.rest();
    if rest.len() != expected {
        return Err(IgtlError::Truncated {
            what: "IMAGE pixels",
            need: expected as u64,
            have: rest.len() as u64,
        });
    }
    image.pixels = rest.to_vec();
    Ok(image)
}

/// Split a body into (extended header, content, metadata) per the header version, checking every size.
/// Returns the content slice, the metadata and the message id.
pub fn split_body<'a>(header: &Header, body: &'a [u8]) -> Result<(&'a [u8], Vec<MetaEntry>, u32), IgtlError> {
    if header.version < 2 {
        return Ok((body, Vec::new(), 0));
    }
    let blen = body.len() as u64;
    let mut c = Cursor::new(body, "extended header");
    let ext_size = c.u16()?;
    let meta_header_size = u64::from(c.u16()?);
    let meta_size = u64::from(c.u32()?);
    let message_id = c.u32()?;
    if ext_size < 12 || u64::from(ext_size) > blen {
        return Err(IgtlError::BadExtendedHeader {
            declared: ext_size,
            body: blen,
        });
    }
    let available = blen - u64::from(ext_size);
    let meta_total = meta_header_size + meta_size;
    if meta_total > available {
        return Err(IgtlError::MetadataBeyondBody {
            declared: meta_total,
            available,
        });
    }
    // Both now fit in the body, so these casts and slices are in range.
    let content_end = body.len() - meta_total as usize;
    let content = &body[usize::from(ext_size)..content_end];
    let meta_header = &body[content_end..content_end + meta_header_size as usize];
    let meta_body = &body[content_end + meta_header_size as usize..];
    let metadata = if meta_header_size == 0 {
        Vec::new()
    } else {
        decode_metadata(meta_header, meta_body)?
    };
    Ok((content, metadata, message_id))
}

fn decode_metadata(meta_header: &[u8], meta_body: &[u8]) -> Result<Vec<MetaEntry>, IgtlError> {
    let mut h = Cursor::new(meta_header, "metadata header");
    let count = h.u16()?;
    if h.remaining() != usize::from(count) * 8 {
        return Err(IgtlError::Malformed {
            type_name: "metadata",
            problem: "header size disagrees with entry count",
        });
    }
    let mut b = Cursor::new(meta_body, "metadata");
    let mut entries = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let key_size = h.u16()?;
        let encoding = h.u16()?;
        let value_size = h.u32()?;
        let key = decode_text(b.take(usize::from(key_size))?, ENCODING_UTF8)?;
        let value_len = usize::try_from(value_size).unwrap_or(usize::MAX);
        let value = decode_text(b.take(value_len)?, encoding)?;
        entries.push(MetaEntry { key, encoding, value });
    }
    Ok(entries)
}

/// Decode a body that has already passed the size limit: CRC, extended header, metadata, then content.
pub fn decode_body(header: &Header, body: &[u8]) -> Result<Message, IgtlError> {
    let computed = crc64(body);
    if computed != header.crc {
        return Err(IgtlError::BadCrc {
            declared: header.crc,
            computed,
        });
    }
    let (content, metadata, message_id) = split_body(header, body)?;
    let body = decode_content(&header.type_name, content)?;
    Ok(Message {
        device_name: header.device_name.clone(),
        timestamp: header.timestamp,
        body,
        metadata,
        message_id,
    })
}

/// Decode one whole frame from a byte slice (used by tests and the fuzz targets; the server reads incrementally).
pub fn decode_frame(bytes: &[u8], limits: &Limits) -> Result<(Message, usize), IgtlError> {
    let mut c = Cursor::new(bytes, "header");
    let mut raw = [0u8; HEADER_SIZE];
    raw.copy_from_slice(c.take(HEADER_SIZE)?);
    let header = Header::decode(&raw)?;
    let size = header.check_size(limits)?;
    c.what = "body";
    let body = c.take(size)?;
    Ok((decode_body(&header, body)?, HEADER_SIZE + size))
}

fn put_f32(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&(v as f32).to_be_bytes());
}

fn encode_content(body: &Body, out: &mut Vec<u8>) {
    match body {
        Body::Transform(m) => {
            for col in 0..4 {
                for row in 0..3 {
                    put_f32(out, m[(row, col)]);
                }
            }
        }
        Body::Point(items) => {
            for p in items {
                put_fixed(out, &p.name, 64);
                put_fixed(out, &p.group, 32);
                out.extend_from_slice(&p.rgba);
                for v in p.position.iter() {
                    put_f32(out, *v);
                }
                put_f32(out, p.diameter);
                put_fixed(out, &p.owner, 20);
            }
        }
        Body::String(s) => {
            let bytes = &s.text.as_bytes()[..s.text.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&text_encoding(&s.text).to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Body::Status(s) => {
            out.extend_from_slice(&s.code.to_be_bytes());
            out.extend_from_slice(&s.subcode.to_be_bytes());
            put_fixed(out, &s.error_name, 20);
            out.extend_from_slice(s.status_string.as_bytes());
            out.push(0);
        }
        Body::Image(img) => {
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&[
                img.components,
                img.scalar_type as u8,
                if img.big_endian { 1 } else { 2 },
            ]);
            out.push(img.coordinate as u8);
            img.size.iter().for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
            let m = &img.ijk_to_world;
            let half = Vector3::from_fn(|a, _| (f64::from(img.size[a]) - 1.0) / 2.0);
            let centre = m.fixed_slice::<3, 1>(0, 3) + m.fixed_slice::<3, 3>(0, 0) * half;
            for col in 0..3 {
                for row in 0..3 {
                    put_f32(out, m[(row, col)]);
                }
            }
            centre.iter().for_each(|v| put_f32(out, *v));
            img.subvolume_offset
                .iter()
                .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
            img.subvolume_size
                .iter()
                .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
            out.extend_from_slice(&img.pixels);
        }
    }
}

impl Message {
    pub fn new(device_name: impl Into<String>, body: Body) -> Self {
        Message {
            device_name: device_name.into(),
            timestamp: 0,
            body,
            metadata: Vec::new(),
            message_id: 0,
        }
    }

    /// A whole frame in header `version` 1 or 2 (metadata is only carried in 2).
    pub fn encode(&self, version: u16) -> Vec<u8> {
        let mut body = Vec::new();
        if version >= 2 {
            let mut meta_header = Vec::new();
            let mut meta_body = Vec::new();
            if !self.metadata.is_empty() {
                meta_header.extend_from_slice(&(self.metadata.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
                for e in self.metadata.iter().take(usize::from(u16::MAX)) {
                    let key = &e.key.as_bytes()[..e.key.len().min(usize::from(u16::MAX))];
                    meta_header.extend_from_slice(&(key.len() as u16).to_be_bytes());
                    meta_header.extend_from_slice(&text_encoding(&e.value).to_be_bytes());
                    meta_header.extend_from_slice(&(e.value.len() as u32).to_be_bytes());
                    meta_body.extend_from_slice(key);
                    meta_body.extend_from_slice(e.value.as_bytes());
                }
            }
            body.extend_from_slice(&12u16.to_be_bytes());
            body.extend_from_slice(&(meta_header.len() as u16).to_be_bytes());
            body.extend_from_slice(&(meta_body.len() as u32).to_be_bytes());
            body.extend_from_slice(&self.message_id.to_be_bytes());
            encode_content(&self.body, &mut body);
            body.extend_from_slice(&meta_header);
            body.extend_from_slice(&meta_body);
        } else {
            encode_content(&self.body, &mut body);
        }
        let header = Header {
            version: if version >= 2 { 2 } else { 1 },
            type_name: self.body.type_name().to_owned(),
            device_name: self.device_name.clone(),
            timestamp: self.timestamp,
            body_size: body.len() as u64,
            crc: crc64(&body),
        };
        let mut out = header.encode().to_vec();
        out.extend_from_slice(&body);
        out
    }
}
