//! Task identity: `"{full_name}_{first 16 hex digits of blake3([full_name, args])}"`.
//!
//! The digest covers the canonical MessagePack encoding (see [`crate::value`]) of the two-element
//! array `[full_name, args]`, where `args` is the array of the task's arguments in declaration
//! order (injected parameters excluded). The execution id is not part of it, so the same call
//! gets the same id in every execution, process and machine. Repeats within one execution are
//! told apart by an occurrence suffix: `id`, `id~1`, `id~2`, ...

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::Result;
use crate::value;

/// The id of a call of `full_name` with the arguments whose canonical encoding is `args`.
///
/// ```
/// let args = flux::value::to_msgpack(&("World",))?;
/// let id = flux::identity::task_id("say_hello", &args);
/// assert!(id.starts_with("say_hello_"));
/// assert_eq!(id.len(), "say_hello_".len() + 16);
/// # Ok::<(), flux::Error>(())
/// ```
pub fn task_id(full_name: &str, args: &[u8]) -> String {
    task_id_arc(full_name, args).to_string()
}

/// [`task_id`] as the shared string the engine keeps: one allocation, no formatting machinery.
pub(crate) fn task_id_arc(full_name: &str, args: &[u8]) -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // The MessagePack header of the two-element array `[full_name, args]` and of the name.
    let mut header = [0u8; 6];
    let mut len = 1;
    header[0] = 0x92;
    len += value::str_header(&mut header[1..], full_name.len());
    let total = len + full_name.len() + args.len();
    let mut input = [0u8; 256];
    let digest = if total <= input.len() {
        // Short inputs (nearly every call) are hashed in one piece from the stack, which spares
        // the incremental hasher's set-up and its buffering of three small updates.
        input[..len].copy_from_slice(&header[..len]);
        input[len..len + full_name.len()].copy_from_slice(full_name.as_bytes());
        input[len + full_name.len()..total].copy_from_slice(args);
        blake3::hash(&input[..total])
    } else {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header[..len]);
        hasher.update(full_name.as_bytes());
        hasher.update(args);
        hasher.finalize()
    };
    let mut suffix = [0u8; 17];
    suffix[0] = b'_';
    for (i, byte) in digest.as_bytes()[..8].iter().enumerate() {
        suffix[1 + 2 * i] = HEX[usize::from(byte >> 4)];
        suffix[2 + 2 * i] = HEX[usize::from(byte & 0x0f)];
    }
    // The suffix is ASCII by construction.
    let suffix = std::str::from_utf8(&suffix).unwrap_or_default();
    let len = full_name.len() + suffix.len();
    let mut short = [0u8; 96];
    if len <= short.len() {
        // Assembled on the stack, so that the id costs one allocation (the shared string).
        short[..full_name.len()].copy_from_slice(full_name.as_bytes());
        short[full_name.len()..len].copy_from_slice(suffix.as_bytes());
        return Arc::from(std::str::from_utf8(&short[..len]).unwrap_or_default());
    }
    Arc::from(format!("{full_name}{suffix}"))
}

/// Encodes a call's arguments (any `Serialize`, usually a tuple) and returns the encoding with
/// the task id it gives.
pub fn encode_call<A: Serialize + ?Sized>(full_name: &str, args: &A) -> Result<(Vec<u8>, String)> {
    let bytes = value::to_msgpack(args)?;
    let id = task_id(full_name, &bytes);
    Ok((bytes, id))
}

/// A hasher for maps keyed by task ids and other strings the engine made itself: a multiply and
/// rotate per eight bytes, several times cheaper than the default SipHash on ids of 20 to 60
/// bytes. Not for keys an outsider chooses (it does not resist collision flooding).
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by task ids (see [`IdHasher`]).
pub(crate) type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Counts how often each task id has been called in one execution, to give repeats their `~n`.
#[derive(Debug, Default)]
pub(crate) struct Occurrences {
    seen: IdMap<Arc<str>, u32>,
}

impl Occurrences {
    /// Room for `calls` distinct ids without growing (a replay knows how many the log holds).
    pub(crate) fn with_capacity(calls: usize) -> Self {
        let mut seen = IdMap::default();
        seen.reserve(calls);
        Occurrences { seen }
    }

    /// The id of the next call with `base` id: `base` the first time, then `base~1`, `base~2`...
    pub(crate) fn next(&mut self, base: Arc<str>) -> Arc<str> {
        let n = self.seen.entry(base.clone()).or_insert(0);
        let id = if *n == 0 { base } else { Arc::from(format!("{base}~{n}")) };
        *n += 1;
        id
    }
}

/// The id without its occurrence suffix (`a_0123~2` gives `a_0123`). Only a trailing `~` and
/// digits are a suffix: a `~` filled into a name template stays part of the id.
pub fn base_id(task_id: &str) -> &str {
    match task_id.rsplit_once('~') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => task_id,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn id_of<A: Serialize>(name: &str, args: &A) -> String {
        encode_call(name, args).expect("encode").1
    }

    #[test]
    fn fixed_ids() {
        // These ids are a public promise: recorded executions depend on them staying the same.
        // Cross-checked with Python: msgpack.packb([name, args]) hashed by the blake3 package.
        assert_eq!(id_of("say_hello", &("World",)), "say_hello_d5a59662e4644e1f");
        assert_eq!(id_of("add", &(1u32, 2u32)), "add_1e0f807804386b4c");
        assert_eq!(id_of("process_x", &("x",)), "process_x_e9fd34d3c7366d39");
        assert_eq!(id_of("no_args", &[(); 0]), "no_args_e54381e216954c68");
    }

    #[test]
    fn long_arguments_get_the_same_id_as_in_one_piece() {
        // Arguments past the stack buffer are hashed incrementally: the id must not change.
        for n in [200usize, 240, 250, 251, 252, 300, 5000] {
            let arg = "x".repeat(n);
            let bytes = value::to_msgpack(&(&arg,)).expect("encode");
            let mut whole = vec![0x92];
            whole.extend_from_slice(&value::to_msgpack(&"long").expect("encode"));
            whole.extend_from_slice(&bytes);
            let digest = blake3::hash(&whole);
            let hex: String = digest.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(task_id("long", &bytes), format!("long_{hex}"), "{n} bytes");
        }
    }

    #[test]
    fn integer_width_does_not_matter() {
        assert_eq!(id_of("add", &(1u8, 2i64)), id_of("add", &(1u64, 2u16)));
    }

    #[test]
    fn name_and_args_both_count() {
        assert_ne!(id_of("a", &("x",)), id_of("b", &("x",)));
        assert_ne!(id_of("a", &("x",)), id_of("a", &("y",)));
    }

    #[test]
    fn repeats_get_occurrence_suffixes() {
        let mut occ = Occurrences::default();
        assert_eq!(&*occ.next("t_1".into()), "t_1");
        assert_eq!(&*occ.next("u_2".into()), "u_2");
        assert_eq!(&*occ.next("t_1".into()), "t_1~1");
        assert_eq!(&*occ.next("t_1".into()), "t_1~2");
        assert_eq!(base_id("t_1~2"), "t_1");
        assert_eq!(base_id("t_1"), "t_1");
        assert_eq!(base_id("fetch_h/~al_0123456789abcdef"), "fetch_h/~al_0123456789abcdef");
        assert_eq!(base_id("fetch_h/~al_0123456789abcdef~3"), "fetch_h/~al_0123456789abcdef");
    }

    proptest! {
        #[test]
        fn ids_ignore_map_key_order(entries in proptest::collection::vec(("[a-z]{0,6}", any::<u32>()), 0..16)) {
            let map: HashMap<String, u32> = entries.iter().cloned().collect();
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.reverse();
            let mut rebuilt: HashMap<String, u32> = HashMap::new();
            for k in keys {
                rebuilt.insert(k.clone(), map[k]);
            }
            let btree: BTreeMap<String, u32> = map.clone().into_iter().collect();
            let a = id_of("count", &(&map,));
            prop_assert_eq!(&a, &id_of("count", &(&rebuilt,)));
            prop_assert_eq!(&a, &id_of("count", &(&btree,)));
        }
    }
}
