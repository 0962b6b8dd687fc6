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
    task_id_text(full_name, args).as_str().to_string()
}

/// A task id built on the stack: computing one allocates nothing unless the id is long.
pub(crate) struct IdText {
    short: [u8; 96],
    len: usize,
    long: Option<String>,
}

impl IdText {
    /// The id.
    pub(crate) fn as_str(&self) -> &str {
        match &self.long {
            Some(long) => long,
            // Only whole UTF-8 strings are copied in (see `task_id_text`).
            None => std::str::from_utf8(&self.short[..self.len]).unwrap_or_default(),
        }
    }
}

/// [`task_id`] without an allocation for ids of up to 96 bytes (nearly all of them): a call
/// answered from the log then allocates nothing for its id.
pub(crate) fn task_id_text(full_name: &str, args: &[u8]) -> IdText {
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
    let mut id = IdText { short: [0u8; 96], len: full_name.len() + suffix.len(), long: None };
    if id.len <= id.short.len() {
        id.short[..full_name.len()].copy_from_slice(full_name.as_bytes());
        id.short[full_name.len()..id.len].copy_from_slice(&suffix);
    } else {
        // The suffix is ASCII by construction.
        id.long = Some(format!("{full_name}{}", std::str::from_utf8(&suffix).unwrap_or_default()));
    }
    id
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

/// The task ids of one execution in one map: how often each base id has been called, to give
/// repeats their `~n`, and what the engine knows of an id (`R`: what the log recorded of it).
#[derive(Debug)]
pub(crate) struct CallIds<R> {
    ids: IdMap<Arc<str>, Known>,
    /// What is known of the ids that have an entry here (kept apart, so that the many ids
    /// known of nothing, those called for the first time, take little room).
    infos: Vec<R>,
}

#[derive(Debug)]
struct Known {
    /// Calls so far with this id as their base (a `Cell`, so that counting and sharing the key
    /// take one lookup).
    calls: std::cell::Cell<u32>,
    /// Where in `infos` what is known of the id is.
    info: Option<usize>,
}

impl<R> Default for CallIds<R> {
    fn default() -> Self {
        CallIds { ids: IdMap::default(), infos: Vec::new() }
    }
}

impl<R: Copy + Default> CallIds<R> {
    /// Room for `ids` distinct ids known of without growing (a replay knows how many the log
    /// holds).
    pub(crate) fn with_capacity(ids: usize) -> Self {
        let mut map = IdMap::default();
        map.reserve(ids);
        CallIds { ids: map, infos: Vec::with_capacity(ids) }
    }

    /// What is known of `id`, to fill in (the log's records, when a run begins).
    pub(crate) fn info_mut(&mut self, id: Arc<str>) -> &mut R {
        let known = self.ids.entry(id).or_insert(Known { calls: std::cell::Cell::new(0), info: None });
        let index = *known.info.get_or_insert_with(|| {
            self.infos.push(R::default());
            self.infos.len() - 1
        });
        &mut self.infos[index]
    }

    /// What is known of `id`.
    pub(crate) fn info(&self, id: &str) -> Option<&R> {
        self.infos.get(self.ids.get(id)?.info?)
    }

    /// The id of the next call with `base` id: `base` the first time, then `base~1`, `base~2`...
    /// Returns the base and the id as shared strings, and what is known of the id. An id the
    /// map holds already is shared, not copied: the first call of a base id that the log holds
    /// allocates nothing here (a repeat formats its `~n` id to look it up).
    pub(crate) fn next(&mut self, base: &str) -> (Arc<str>, Arc<str>, Option<R>) {
        if let Some((shared, known)) = self.ids.get_key_value(base) {
            let n = known.calls.get();
            known.calls.set(n + 1);
            if n == 0 {
                return (shared.clone(), shared.clone(), self.found(known));
            }
            let shared = shared.clone();
            // A base id ends in hex digits, never in `~n`: this key is never a base.
            let id = format!("{base}~{n}");
            return match self.ids.get_key_value(id.as_str()) {
                Some((id, known)) => (shared, id.clone(), self.found(known)),
                None => (shared, Arc::from(id), None),
            };
        }
        let shared: Arc<str> = Arc::from(base);
        self.ids.insert(shared.clone(), Known { calls: std::cell::Cell::new(1), info: None });
        (shared.clone(), shared, None)
    }

    /// Takes back the last call of `base` (the id [`CallIds::next`] just gave), as if it had
    /// not been made: the next call of `base` gets that id again.
    pub(crate) fn take_back(&mut self, base: &str) {
        if let Some(known) = self.ids.get(base) {
            known.calls.set(known.calls.get().saturating_sub(1));
        }
    }

    fn found(&self, known: &Known) -> Option<R> {
        known.info.and_then(|i| self.infos.get(i)).copied()
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
    fn long_names_get_the_same_id_as_short_ones() {
        // Ids of up to 96 bytes (names of up to 79) are built on the stack, longer ones on the
        // heap: the id is the name, `_` and 16 hex digits of the digest either way.
        for n in [1usize, 78, 79, 80, 200] {
            let name = "n".repeat(n);
            let bytes = value::to_msgpack(&(1u8,)).expect("encode");
            let mut whole = vec![0x92];
            whole.extend_from_slice(&value::to_msgpack(&name).expect("encode"));
            whole.extend_from_slice(&bytes);
            let hex: String = blake3::hash(&whole).as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(task_id(&name, &bytes), format!("{name}_{hex}"), "a name of {n} bytes");
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
        let mut ids = CallIds::<()>::default();
        let mut next = |base: &str| {
            let (shared, id, known) = ids.next(base);
            assert_eq!((&*shared, known), (base, None));
            id
        };
        assert_eq!(&*next("t_1"), "t_1");
        assert_eq!(&*next("u_2"), "u_2");
        assert_eq!(&*next("t_1"), "t_1~1");
        assert_eq!(&*next("t_1"), "t_1~2");
        assert_eq!(base_id("t_1~2"), "t_1");
        assert_eq!(base_id("t_1"), "t_1");
        assert_eq!(base_id("fetch_h/~al_0123456789abcdef"), "fetch_h/~al_0123456789abcdef");
        assert_eq!(base_id("fetch_h/~al_0123456789abcdef~3"), "fetch_h/~al_0123456789abcdef");
    }

    /// A replayed call gets what the log knows of its id, and reuses the log's strings.
    #[test]
    fn ids_the_log_holds_are_shared_not_copied() {
        let first: Arc<str> = Arc::from("t_1");
        let repeat: Arc<str> = Arc::from("t_1~1");
        let mut ids = CallIds::<u32>::with_capacity(2);
        *ids.info_mut(first.clone()) = 3;
        *ids.info_mut(repeat.clone()) = 5;
        assert_eq!((ids.info("t_1"), ids.info("t_1~1"), ids.info("t_1~2")), (Some(&3), Some(&5), None));
        let (base, id, known) = ids.next("t_1");
        assert!(Arc::ptr_eq(&base, &first) && Arc::ptr_eq(&id, &first));
        assert_eq!(known, Some(3));
        let (base, id, known) = ids.next("t_1");
        assert!(Arc::ptr_eq(&base, &first) && Arc::ptr_eq(&id, &repeat));
        assert_eq!(known, Some(5));
        let (base, id, known) = ids.next("t_1");
        assert!(Arc::ptr_eq(&base, &first));
        assert_eq!((&*id, known), ("t_1~2", None));
        // A base the log does not hold is new, and so are its repeats.
        assert_eq!(&*ids.next("u_2").1, "u_2");
        assert_eq!((&*ids.next("u_2").1, ids.info("u_2")), ("u_2~1", None));
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
