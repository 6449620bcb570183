//! The stable value encoding (`weir-state/1`), used for keys, namespaces and
//! values of the typed primitives.
//!
//! Integers are fixed-width little-endian, lengths are LEB128 varints,
//! strings are UTF-8. The format is documented in `docs/state.md` and only
//! ever extended, so state written by one release is readable by the next.

use crate::error::{Result, StateError};

/// The encoding's name and version, written into every snapshot.
pub const ENCODING: &str = "weir-state/1";

/// A type that can be kept in state.
///
/// `decode` must accept exactly what `encode` wrote and consume it from the
/// front of `input`, leaving the rest.
///
/// ```
/// use weir_state::StateCodec;
/// let mut bytes = Vec::new();
/// (7u64, "seven".to_string()).encode(&mut bytes);
/// let mut input = bytes.as_slice();
/// let back = <(u64, String)>::decode(&mut input).unwrap();
/// assert_eq!(back, (7, "seven".to_string()));
/// assert!(input.is_empty());
/// ```
pub trait StateCodec: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `input`.
    fn decode(input: &mut &[u8]) -> Result<Self>;

    /// The encoding as a new buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a whole buffer; trailing bytes are an error.
    fn from_bytes(mut input: &[u8]) -> Result<Self> {
        let value = Self::decode(&mut input)?;
        if input.is_empty() {
            Ok(value)
        } else {
            Err(StateError::Corrupt(format!(
                "{} trailing bytes after a value",
                input.len()
            )))
        }
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(StateError::Corrupt(format!(
            "value truncated: needed {n} bytes, {} left",
            input.len()
        )));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint.
pub fn get_varint(input: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(input, 1)?[0];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(StateError::Corrupt("varint longer than 64 bits".into()))
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a length-prefixed byte string.
pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = get_varint(input)?;
    let len = usize::try_from(len).map_err(|_| StateError::Corrupt("length overflow".into()))?;
    take(input, len)
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl StateCodec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                let bytes = take(input, std::mem::size_of::<$t>())?;
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(buf))
            }
        }
    )*};
}
fixed_width!(u8, u16, u32, u64, i8, i16, i32, i64, i128, f32, f64);

impl StateCodec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl StateCodec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match take(input, 1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(StateError::Corrupt(format!("bad boolean byte {b}"))),
        }
    }
}

impl StateCodec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let bytes = get_bytes(input)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| StateError::Corrupt(format!("string is not UTF-8: {e}")))
    }
}

impl<T: StateCodec> StateCodec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            b => Err(StateError::Corrupt(format!("bad option tag {b}"))),
        }
    }
}

impl<T: StateCodec> StateCodec for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        for v in self {
            v.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = get_varint(input)?;
        // Do not trust the length for the allocation: a damaged value must
        // fail, not reserve gigabytes.
        let mut values = Vec::with_capacity((len as usize).min(input.len()));
        for _ in 0..len {
            values.push(T::decode(input)?);
        }
        Ok(values)
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: StateCodec),+> StateCodec for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: StateCodec + PartialEq + std::fmt::Debug>(v: T) {
        assert_eq!(T::from_bytes(&v.to_bytes()).unwrap(), v);
    }

    #[test]
    fn values_round_trip() {
        round_trip(0u64);
        round_trip(u64::MAX);
        round_trip(-5i64);
        round_trip(1.5f64);
        round_trip(true);
        round_trip(String::from("grüße"));
        round_trip(Some(vec![1u32, 2, 3]));
        round_trip(None::<String>);
        round_trip((1u8, String::from("a"), -3i32));
    }

    #[test]
    fn the_encoding_is_fixed() {
        // These bytes are the format: a change here breaks stored state.
        assert_eq!(300u64.to_bytes(), vec![44, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(String::from("hi").to_bytes(), vec![2, b'h', b'i']);
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, vec![0xac, 0x02]);
        assert_eq!(Some(1u8).to_bytes(), vec![1, 1]);
    }

    #[test]
    fn damaged_values_are_errors() {
        assert!(u64::from_bytes(&[1, 2]).is_err());
        assert!(String::from_bytes(&[5, b'a']).is_err());
        assert!(bool::from_bytes(&[7]).is_err());
        assert!(u8::from_bytes(&[1, 2]).is_err());
        // A huge claimed length fails without allocating it.
        assert!(Vec::<u64>::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
