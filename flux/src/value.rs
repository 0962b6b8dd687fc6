//! Values as flux stores them: canonical MessagePack.
//!
//! Canonical means one value has one encoding: integers take their shortest form, structs are
//! maps keyed by field name in declaration order, and every map (a `HashMap` included) is written
//! with its entries sorted by the bytes of their encoded keys, so the encoding (and with it a task
//! id) does not depend on hash-map iteration order. Enums are externally tagged: a unit variant is
//! its name, any other variant a one-entry map `{name: content}`. Decoding uses `rmp-serde`, which
//! reads this form back into the same Rust types.
//!
//! As in most self-describing formats, `None`, `()` and `Some(None)` all encode as `nil`, so an
//! `Option<Option<T>>` recorded as `Some(None)` reads back as `None`: use an enum when the
//! difference matters to a workflow.

use std::fmt;

use rmp::encode;
use serde::de::DeserializeOwned;
use serde::ser::{self, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// A value flux can record and read back: `Serialize + DeserializeOwned`.
///
/// Task arguments and outputs and workflow inputs and outputs must be `Storable`; it is
/// implemented for every such type, so deriving `Serialize` and `Deserialize` is enough.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the flux event log",
    label = "must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "task arguments and outputs, and workflow inputs and outputs, are recorded as MessagePack: \
            derive `Serialize` and `Deserialize` for `{Self}`, and use owned types (`String`, not `&str`)"
)]
pub trait Storable: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> Storable for T {}

/// Encodes `value` as canonical MessagePack.
///
/// ```
/// use std::collections::HashMap;
///
/// let a: HashMap<&str, u8> = [("b", 2), ("a", 1)].into_iter().collect();
/// let b: HashMap<&str, u8> = [("a", 1), ("b", 2)].into_iter().collect();
/// assert_eq!(flux::value::to_msgpack(&a)?, flux::value::to_msgpack(&b)?);
/// # Ok::<(), flux::Error>(())
/// ```
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    append_msgpack(&mut out, value)?;
    Ok(out)
}

/// Appends the canonical MessagePack encoding of `value` to `out`.
pub fn append_msgpack<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    let start = out.len();
    value.serialize(&mut Canonical { out }).map_err(|e| {
        out.truncate(start);
        Error::new(ErrorKind::Encode, format!("cannot encode value as MessagePack: {e}"))
    })
}

/// Decodes MessagePack into `T`.
///
/// ```
/// let bytes = flux::value::to_msgpack(&("x", 3u32))?;
/// let back: (String, u32) = flux::value::from_msgpack(&bytes)?;
/// assert_eq!(back, ("x".to_string(), 3));
/// # Ok::<(), flux::Error>(())
/// ```
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| Error::decode(format_args!("stored value does not fit `{}`", std::any::type_name::<T>()), e))
}

/// Appends a MessagePack string header and bytes.
pub(crate) fn append_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = encode::write_str(out, s);
}

/// Writes the MessagePack header of a string of `len` bytes (the smallest form, as
/// [`append_str`] writes it) into `out`, which has room for 5 bytes; returns its length.
pub(crate) fn str_header(out: &mut [u8], len: usize) -> usize {
    match len {
        0..32 => {
            // `len` is below 32 here.
            out[0] = 0xa0 | len as u8;
            1
        }
        32..256 => {
            out[0] = 0xd9;
            out[1] = len as u8;
            2
        }
        256..65536 => {
            out[0] = 0xda;
            out[1..3].copy_from_slice(&(len as u16).to_be_bytes());
            3
        }
        _ => {
            out[0] = 0xdb;
            out[1..5].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
            5
        }
    }
}

#[derive(Debug)]
struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

type R = std::result::Result<(), EncodeError>;

struct Canonical<'a> {
    out: &'a mut Vec<u8>,
}

/// Writes a container header at `at`, moving the `len` content bytes already written after it.
fn insert_header(out: &mut Vec<u8>, at: usize, write: impl FnOnce(&mut Vec<u8>)) {
    let mut header = Vec::with_capacity(5);
    write(&mut header);
    out.splice(at..at, header);
}

fn array_header(out: &mut Vec<u8>, n: usize) -> R {
    let n = u32::try_from(n).map_err(|_| EncodeError("sequence longer than 2^32 items".into()))?;
    let _ = encode::write_array_len(out, n);
    Ok(())
}

fn map_header(out: &mut Vec<u8>, n: usize) -> R {
    let n = u32::try_from(n).map_err(|_| EncodeError("map larger than 2^32 entries".into()))?;
    let _ = encode::write_map_len(out, n);
    Ok(())
}

/// A sequence (array) being written; the header is patched in when the length was not known.
struct Seq<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    declared: Option<usize>,
    count: usize,
}

impl Seq<'_> {
    fn finish(self) -> R {
        match self.declared {
            Some(n) if n == self.count => Ok(()),
            Some(n) => Err(EncodeError(format!("sequence declared {n} items but wrote {}", self.count))),
            None => {
                let count =
                    u32::try_from(self.count).map_err(|_| EncodeError("sequence longer than 2^32 items".into()))?;
                insert_header(self.out, self.start, |h| {
                    let _ = encode::write_array_len(h, count);
                });
                Ok(())
            }
        }
    }
}

/// A map (or struct) being written. Entry boundaries are recorded so that maps can be sorted by
/// encoded key when they end; the header is always written last, once the count is known.
struct Map<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    /// (key start, value start) of each entry, relative to the buffer.
    entries: Vec<(usize, usize)>,
    sort: bool,
}

impl<'a> Map<'a> {
    fn new(out: &'a mut Vec<u8>, sort: bool, len: Option<usize>) -> Self {
        let start = out.len();
        Map { out, start, entries: Vec::with_capacity(len.unwrap_or(4)), sort }
    }

    fn finish(self) -> R {
        let Map { out, start, entries, sort } = self;
        if sort && entries.len() > 1 {
            let end = out.len();
            let mut spans: Vec<(usize, usize, usize)> = entries
                .iter()
                .enumerate()
                .map(|(i, &(k, v))| (k, v, entries.get(i + 1).map_or(end, |next| next.0)))
                .collect();
            let body = &out[start..end];
            spans.sort_by(|a, b| body[a.0 - start..a.1 - start].cmp(&body[b.0 - start..b.1 - start]));
            let mut sorted = Vec::with_capacity(end - start);
            for (k, _, e) in &spans {
                sorted.extend_from_slice(&body[k - start..e - start]);
            }
            out.truncate(start);
            out.extend_from_slice(&sorted);
        }
        let mut header = Vec::with_capacity(5);
        map_header(&mut header, entries.len())?;
        out.splice(start..start, header);
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Canonical<'_> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Map<'a>;
    type SerializeStructVariant = Map<'a>;

    fn serialize_bool(self, v: bool) -> R {
        let _ = encode::write_bool(self.out, v);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> R {
        let _ = encode::write_sint(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> R {
        let _ = encode::write_uint(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> R {
        let v = i64::try_from(v).map_err(|_| EncodeError(format!("integer {v} does not fit in 64 bits")))?;
        self.serialize_i64(v)
    }
    fn serialize_u128(self, v: u128) -> R {
        let v = u64::try_from(v).map_err(|_| EncodeError(format!("integer {v} does not fit in 64 bits")))?;
        self.serialize_u64(v)
    }
    fn serialize_f32(self, v: f32) -> R {
        let _ = encode::write_f32(self.out, v);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> R {
        let _ = encode::write_f64(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> R {
        append_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        encode::write_bin(self.out, v).map_err(|e| EncodeError(e.to_string()))
    }
    fn serialize_none(self) -> R {
        let _ = encode::write_nil(self.out);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> R {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        let _ = encode::write_map_len(self.out, 1);
        append_str(self.out, variant);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> std::result::Result<Seq<'a>, EncodeError> {
        if let Some(n) = len {
            array_header(self.out, n)?;
        }
        let start = self.out.len();
        Ok(Seq { out: self.out, start, declared: len, count: 0 })
    }
    fn serialize_tuple(self, len: usize) -> std::result::Result<Seq<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> std::result::Result<Seq<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> std::result::Result<Seq<'a>, EncodeError> {
        let _ = encode::write_map_len(self.out, 1);
        append_str(self.out, variant);
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> std::result::Result<Map<'a>, EncodeError> {
        Ok(Map::new(self.out, true, len))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> std::result::Result<Map<'a>, EncodeError> {
        Ok(Map::new(self.out, false, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> std::result::Result<Map<'a>, EncodeError> {
        let _ = encode::write_map_len(self.out, 1);
        append_str(self.out, variant);
        Ok(Map::new(self.out, false, Some(len)))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl Seq<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.count += 1;
        value.serialize(&mut Canonical { out: self.out })
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.item(value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.item(value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.item(value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.item(value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        let key_start = self.out.len();
        key.serialize(&mut Canonical { out: self.out })?;
        self.entries.push((key_start, self.out.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(&mut Canonical { out: self.out })
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl Map<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        let key_start = self.out.len();
        append_str(self.out, key);
        self.entries.push((key_start, self.out.len()));
        value.serialize(&mut Canonical { out: self.out })
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.field(key, value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.field(key, value)
    }
    fn end(self) -> R {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[test]
    fn string_headers_match_the_encoder() {
        for len in [0usize, 1, 31, 32, 255, 256, 65_535, 65_536] {
            let text = "x".repeat(len);
            let mut encoded = Vec::new();
            append_str(&mut encoded, &text);
            let mut header = [0u8; 5];
            let n = str_header(&mut header, len);
            assert_eq!(&encoded[..n], &header[..n], "header of a {len}-byte string");
            assert_eq!(encoded.len(), n + len);
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: u64,
        items: Vec<String>,
        note: Option<String>,
        shape: Shape,
        tags: BTreeMap<String, i64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        coupon: Option<String>,
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(v: T) {
        let bytes = to_msgpack(&v).expect("encode");
        let back: T = from_msgpack(&bytes).expect("decode");
        assert_eq!(back, v);
    }

    #[test]
    fn known_encodings() {
        assert_eq!(to_msgpack(&1u64).unwrap(), [0x01]);
        assert_eq!(to_msgpack(&-1i64).unwrap(), [0xff]);
        assert_eq!(to_msgpack(&300u16).unwrap(), [0xcd, 0x01, 0x2c]);
        assert_eq!(to_msgpack("ab").unwrap(), [0xa2, b'a', b'b']);
        assert_eq!(to_msgpack(&()).unwrap(), [0xc0]);
        assert_eq!(to_msgpack(&("a", 1u8)).unwrap(), [0x92, 0xa1, b'a', 0x01]);
        // structs are maps in declaration order
        #[derive(Serialize)]
        struct P {
            y: u8,
            x: u8,
        }
        assert_eq!(to_msgpack(&P { y: 1, x: 2 }).unwrap(), [0x82, 0xa1, b'y', 1, 0xa1, b'x', 2]);
    }

    #[test]
    fn maps_are_sorted_by_encoded_key() {
        let m: HashMap<&str, u8> = [("b", 2), ("a", 1), ("c", 3)].into_iter().collect();
        assert_eq!(to_msgpack(&m).unwrap(), [0x83, 0xa1, b'a', 1, 0xa1, b'b', 2, 0xa1, b'c', 3]);
    }

    #[test]
    fn round_trips_through_rmp_serde() {
        round_trip(Order {
            id: u64::MAX,
            items: vec!["a".into(), "bé".into()],
            note: None,
            shape: Shape::Rect { w: 3, h: 4 },
            tags: [("x".to_string(), -5)].into_iter().collect(),
            coupon: Some("FREE".into()),
        });
        round_trip(vec![Shape::Dot, Shape::Circle(1.5), Shape::Pair(-1, 2)]);
        round_trip((String::from("x"), 7u32, vec![1u8, 2], Option::<bool>::None));
        round_trip('ß');
        round_trip(i64::MIN);
    }

    #[test]
    fn unknown_length_sequences_get_a_header() {
        struct Odd;
        impl Serialize for Odd {
            fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                use ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                for i in 0..20u8 {
                    seq.serialize_element(&i)?;
                }
                seq.end()
            }
        }
        let back: Vec<u8> = from_msgpack(&to_msgpack(&Odd).unwrap()).unwrap();
        assert_eq!(back, (0..20).collect::<Vec<u8>>());
    }

    #[test]
    fn decode_error_names_the_type() {
        let bytes = to_msgpack("text").unwrap();
        let err = from_msgpack::<u32>(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("u32"), "{err}");
    }

    proptest! {
        #[test]
        fn map_encoding_ignores_insertion_order(entries in proptest::collection::vec((".{0,8}", any::<i64>()), 0..24)) {
            let forward: HashMap<String, i64> = entries.iter().cloned().collect();
            let mut reversed = HashMap::with_capacity(forward.len() * 2);
            let mut keys: Vec<_> = forward.keys().cloned().collect();
            keys.reverse();
            for k in keys {
                reversed.insert(k.clone(), forward[&k]);
            }
            let sorted: BTreeMap<String, i64> = forward.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let a = to_msgpack(&forward).unwrap();
            prop_assert_eq!(&a, &to_msgpack(&reversed).unwrap());
            let back: BTreeMap<String, i64> = from_msgpack(&a).unwrap();
            prop_assert_eq!(back, sorted);
        }
    }
}
