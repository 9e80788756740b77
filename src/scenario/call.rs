//! [`Call`]: a system's operation or condition as a scenario holds it, its
//! key and value, convertible to and from the system's typed serde enum.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A system operation or condition as written in a scenario: the key
/// (`broadcast`, `received`, `put`, ...) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The key: a variant of the system's operation or condition enum.
    pub key: String,
    /// The value: the variant's fields.
    pub value: toml::Value,
}

impl Call {
    /// The call of a typed operation or condition (a serde enum variant with
    /// data).
    ///
    /// # Panics
    ///
    /// When `typed` does not serialise as a one-key table: the type is not
    /// an externally tagged enum of data-carrying variants.
    pub fn of<T: Serialize + std::fmt::Debug>(typed: &T) -> Call {
        let table = match toml::Value::try_from(typed) {
            Ok(toml::Value::Table(table)) if table.len() == 1 => table,
            other => panic!("{typed:?} is not an enum variant with data (serialises as {other:?})"),
        };
        let (key, value) = table.into_iter().next().expect("one key");
        Call { key, value }
    }

    /// The typed operation or condition.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, String> {
        let table = toml::Table::from_iter([(self.key.clone(), self.value.clone())]);
        T::deserialize(toml::Value::Table(table)).map_err(|e| e.message().trim().to_string())
    }
}

/// A value that can only be `true`: the type of flags such as
/// `converged = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;

impl Serialize for True {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<True, D::Error> {
        if bool::deserialize(deserializer)? {
            Ok(True)
        } else {
            Err(serde::de::Error::custom("expected `true`, found `false`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Op {
        Put { node: u32, key: String },
        Ready(True),
    }

    #[test]
    fn calls_round_trip_through_the_typed_enum() {
        let put = Op::Put { node: 1, key: "a".into() };
        let call = Call::of(&put);
        assert_eq!(call.key, "put");
        assert_eq!(call.typed::<Op>(), Ok(put));
        assert_eq!(Call::of(&Op::Ready(True)).value, toml::Value::Boolean(true));
        let bad = Call { key: "ready".into(), value: toml::Value::Boolean(false) };
        assert!(bad.typed::<Op>().unwrap_err().contains("expected `true`"));
    }
}
