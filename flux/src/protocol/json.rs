//! The JSON forms of what flux stores: any MessagePack value as JSON (for status answers and
//! streams), a JSON input as the MessagePack flux stores, and times as RFC 3339.

#[cfg(feature = "server")]
use std::time::SystemTime;

use serde_json::{Map, Number, Value};

#[cfg(feature = "server")]
use crate::error::Result;

/// The JSON form of a MessagePack value. Binary strings become arrays of bytes, map keys that
/// are not strings are written as their JSON text, and bytes that are not MessagePack become
/// `null`: a stored value always has a JSON form.
pub(crate) fn msgpack_to_json(bytes: &[u8]) -> Value {
    let mut cursor = bytes;
    match read_value(&mut cursor, 0) {
        Some(v) if cursor.is_empty() => v,
        _ => Value::Null,
    }
}

/// Deeper nesting than this is not decoded (the value becomes `null`).
const MAX_DEPTH: usize = 256;

/// The next `n` bytes, if there are as many.
fn take<'a>(cursor: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if cursor.len() < n {
        return None;
    }
    let (head, rest) = cursor.split_at(n);
    *cursor = rest;
    Some(head)
}

/// The next `n` bytes as a big-endian number.
fn be(cursor: &mut &[u8], n: usize) -> Option<u64> {
    Some(take(cursor, n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// One MessagePack value, nested at most [`MAX_DEPTH`] deep.
fn read_value(cursor: &mut &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let marker = *take(cursor, 1)?.first()?;
    let len = |cursor: &mut &[u8], n: usize| be(cursor, n).and_then(|l| usize::try_from(l).ok());
    Some(match marker {
        0x00..=0x7f => Value::from(marker),
        0x80..=0x8f => read_map(cursor, usize::from(marker & 0x0f), depth)?,
        0x90..=0x9f => read_array(cursor, usize::from(marker & 0x0f), depth)?,
        0xa0..=0xbf => read_str(cursor, usize::from(marker & 0x1f))?,
        0xc0 => Value::Null,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4..=0xc6 => {
            let n = len(cursor, 1 << (marker - 0xc4))?;
            Value::Array(take(cursor, n)?.iter().map(|b| Value::from(*b)).collect())
        }
        0xc7..=0xc9 => {
            let n = len(cursor, 1 << (marker - 0xc7))?;
            take(cursor, 1 + n)?;
            Value::Null
        }
        0xca => Number::from_f64(f64::from(f32::from_bits(u32::try_from(be(cursor, 4)?).ok()?)))
            .map_or(Value::Null, Value::Number),
        0xcb => Number::from_f64(f64::from_bits(be(cursor, 8)?)).map_or(Value::Null, Value::Number),
        0xcc..=0xcf => Value::from(be(cursor, 1 << (marker - 0xcc))?),
        0xd0 => Value::from(i64::from(take(cursor, 1)?[0] as i8)),
        0xd1 => Value::from(i64::from(be(cursor, 2)? as u16 as i16)),
        0xd2 => Value::from(i64::from(be(cursor, 4)? as u32 as i32)),
        0xd3 => Value::from(be(cursor, 8)? as i64),
        0xd4..=0xd8 => {
            take(cursor, 1 + (1 << (marker - 0xd4)))?;
            Value::Null
        }
        0xd9..=0xdb => {
            let n = len(cursor, 1 << (marker - 0xd9))?;
            read_str(cursor, n)?
        }
        0xdc | 0xdd => {
            let n = len(cursor, if marker == 0xdc { 2 } else { 4 })?;
            read_array(cursor, n, depth)?
        }
        0xde | 0xdf => {
            let n = len(cursor, if marker == 0xde { 2 } else { 4 })?;
            read_map(cursor, n, depth)?
        }
        0xe0..=0xff => Value::from(i64::from(marker as i8)),
        0xc1 => return None,
    })
}

/// A string of `n` bytes (invalid UTF-8 replaced).
fn read_str(cursor: &mut &[u8], n: usize) -> Option<Value> {
    Some(Value::String(String::from_utf8_lossy(take(cursor, n)?).into_owned()))
}

/// An array of `n` values.
fn read_array(cursor: &mut &[u8], n: usize, depth: usize) -> Option<Value> {
    // Every element takes at least one byte: a length beyond the input is corrupt.
    if n > cursor.len() {
        return None;
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(read_value(cursor, depth + 1)?);
    }
    Some(Value::Array(items))
}

/// A map of `n` entries.
fn read_map(cursor: &mut &[u8], n: usize, depth: usize) -> Option<Value> {
    if n > cursor.len() / 2 {
        return None;
    }
    let mut map = Map::new();
    for _ in 0..n {
        let key = match read_value(cursor, depth + 1)? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        map.insert(key, read_value(cursor, depth + 1)?);
    }
    Some(Value::Object(map))
}

/// The canonical MessagePack form of a JSON value, as flux stores inputs.
#[cfg(feature = "server")]
pub(crate) fn json_to_msgpack(value: &Value) -> Result<Vec<u8>> {
    crate::value::to_msgpack(value)
}

/// A UTC time in RFC 3339 with microseconds (`2026-11-22T10:00:00.123456Z`); a time that
/// format cannot show (after year 9999) is written as microseconds since the Unix epoch.
#[cfg(feature = "server")]
pub(crate) fn rfc3339(time: SystemTime) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if write!(out, "{}", humantime::format_rfc3339_micros(time)).is_err() {
        out.clear();
        let _ = write!(out, "{}", crate::event::to_micros(time));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::HashMap;

    #[test]
    fn stored_values_read_as_the_json_they_came_from() {
        #[derive(Serialize)]
        struct Order {
            id: u32,
            items: Vec<String>,
            total: f64,
            note: Option<String>,
            delta: i64,
        }
        let order = Order { id: 7, items: vec!["a".into(), "b".into()], total: 9.5, note: None, delta: -300 };
        let bytes = crate::value::to_msgpack(&order).unwrap();
        assert_eq!(
            msgpack_to_json(&bytes),
            serde_json::json!({"id": 7, "items": ["a", "b"], "total": 9.5, "note": null, "delta": -300})
        );
        let json = serde_json::json!({"x": [1, -2, 3.25, "s", true, null, {"y": u64::MAX}], "big": i64::MIN});
        assert_eq!(msgpack_to_json(&json_to_msgpack(&json).unwrap()), json);
    }

    #[test]
    fn odd_values_still_have_a_json_form() {
        let ints: HashMap<u8, &str> = [(1, "one")].into_iter().collect();
        assert_eq!(msgpack_to_json(&crate::value::to_msgpack(&ints).unwrap()), serde_json::json!({"1": "one"}));
        assert_eq!(
            msgpack_to_json(&crate::value::to_msgpack(&crate::protocol::Blob(vec![1, 2])).unwrap()),
            serde_json::json!([1, 2])
        );
        assert_eq!(msgpack_to_json(&[0xc1]), Value::Null);
        assert_eq!(msgpack_to_json(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Value::Null);
        assert_eq!(msgpack_to_json(&[0x91]), Value::Null);
        assert_eq!(msgpack_to_json(&[0x01, 0x02]), Value::Null);
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 10_000).chain([0xc0]).collect();
        assert_eq!(msgpack_to_json(&deep), Value::Null);
    }

    #[test]
    fn times_beyond_year_9999_still_format() {
        assert_eq!(rfc3339(crate::event::from_micros(0)), "1970-01-01T00:00:00.000000Z");
        let far = crate::event::from_micros(i64::MAX);
        assert_eq!(rfc3339(far), i64::MAX.to_string());
    }
}
