//! Encoding of a call's arguments and of a task's output.

use crate::error::{Error, ErrorKind, Result};
use crate::value::{self, Storable};

/// How a task's output is encoded and decoded.
///
/// Generated code gets one from [`codec`], called with the span of the task's return type, so a
/// type that cannot be stored is reported once, there; the call path itself needs no bound.
pub struct Codec<T> {
    pub(crate) encode: fn(&T) -> Result<Vec<u8>>,
    pub(crate) decode: fn(&[u8]) -> Result<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

/// The codec of a storable type.
pub const fn codec<T: Storable>() -> Codec<T> {
    Codec { encode: value::to_msgpack::<T>, decode: value::from_msgpack::<T> }
}

/// The arguments of a call, encoded one by one as a MessagePack array in declaration order.
///
/// Produces the same bytes as encoding the tuple of the arguments.
pub struct Args {
    bytes: Vec<u8>,
    error: Option<Error>,
}

impl Args {
    /// Starts an array of `len` arguments.
    pub fn new(len: u32) -> Self {
        let mut bytes = Vec::with_capacity(32);
        let _ = rmp::encode::write_array_len(&mut bytes, len);
        Args { bytes, error: None }
    }

    /// Appends one argument.
    pub fn arg<T: Storable>(mut self, value: &T) -> Self {
        if self.error.is_none()
            && let Err(e) = value::append_msgpack(&mut self.bytes, value)
        {
            self.error = Some(e);
        }
        self
    }

    /// Appends a string argument.
    pub(crate) fn arg_str(mut self, value: &str) -> Self {
        crate::value::append_str(&mut self.bytes, value);
        self
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.bytes),
        }
    }
}

/// Reads recorded arguments back one by one (for retries, fallbacks and rollbacks).
pub struct ArgsReader<'a> {
    de: rmp_serde::Deserializer<rmp_serde::decode::ReadReader<&'a [u8]>>,
}

impl<'a> ArgsReader<'a> {
    /// Opens an encoded argument array that must hold `len` arguments.
    pub fn new(bytes: &'a [u8], len: u32) -> Result<Self> {
        let mut rest = bytes;
        let found = rmp::decode::read_array_len(&mut rest)
            .map_err(|e| Error::decode("recorded task arguments are not an array", e))?;
        if found != len {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("recorded task arguments hold {found} values, the task takes {len}"),
            ));
        }
        Ok(ArgsReader { de: rmp_serde::Deserializer::new(rest) })
    }

    /// Reads the next argument.
    pub fn read<T: Storable>(&mut self) -> Result<T> {
        T::deserialize(&mut self.de).map_err(|e| {
            Error::decode(format_args!("recorded task argument does not fit `{}`", std::any::type_name::<T>()), e)
        })
    }
}
