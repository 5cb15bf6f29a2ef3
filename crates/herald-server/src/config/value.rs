//! How a configuration value is read from a flag or a `HERALD_*` variable (text), read from and
//! written to the TOML file, for every type a key can have.

use super::{AuthMode, BusKind, LogFormat, Secret};
use std::path::PathBuf;
use std::time::Duration;
use toml::Value as Toml;

pub trait Value: Sized {
    /// Its value must not be shown (help output, environment listings).
    const SECRET: bool = false;
    /// A flag alone (`--demo`) means true.
    const SWITCH: bool = false;

    /// Parses the text of a flag or an environment variable.
    fn from_text(text: &str) -> Result<Self, String>;
    /// Reads a TOML value; text values are parsed as flags are.
    fn from_toml(value: &Toml) -> Result<Self, String> {
        match value {
            Toml::String(s) => Self::from_text(s),
            other => Err(format!("expected text, found {}", other.type_str())),
        }
    }
    /// The TOML value, or `None` for an unset optional key.
    fn to_toml(&self) -> Option<Toml>;
}

impl Value for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::String(self.clone()))
    }
}

impl Value for PathBuf {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::String(self.display().to_string()))
    }
}

impl Value for Secret {
    const SECRET: bool = true;

    fn from_text(text: &str) -> Result<Self, String> {
        Ok(Secret::new(text))
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::String(self.expose().to_owned()))
    }
}

impl Value for bool {
    const SWITCH: bool = true;

    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(format!("'{other}' is not true or false")),
        }
    }

    fn from_toml(value: &Toml) -> Result<Self, String> {
        match value {
            Toml::Boolean(b) => Ok(*b),
            Toml::String(s) => Self::from_text(s),
            other => Err(format!("expected true or false, found {}", other.type_str())),
        }
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::Boolean(*self))
    }
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| format!("'{text}' is not a whole number in range"))
            }

            fn from_toml(value: &Toml) -> Result<Self, String> {
                match value {
                    Toml::Integer(n) => <$t>::try_from(*n).map_err(|_| format!("{n} is out of range")),
                    Toml::String(s) => Self::from_text(s),
                    other => Err(format!("expected a number, found {}", other.type_str())),
                }
            }

            fn to_toml(&self) -> Option<Toml> {
                i64::try_from(*self).ok().map(Toml::Integer)
            }
        }
    )*};
}
number!(usize, u32, i32);

/// Durations are human text: `250ms`, `30s`, `1m 30s`, `7days`.
impl Value for Duration {
    fn from_text(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim()).map_err(|e| format!("'{text}' is not a duration ({e})"))
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::String(humantime::format_duration(*self).to_string()))
    }
}

/// Lists are comma-separated in flags and variables, arrays in TOML.
impl Value for Vec<String> {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    fn from_toml(value: &Toml) -> Result<Self, String> {
        match value {
            Toml::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| "expected a list of text".to_owned()))
                .collect(),
            Toml::String(s) => Self::from_text(s),
            other => Err(format!("expected a list, found {}", other.type_str())),
        }
    }

    fn to_toml(&self) -> Option<Toml> {
        Some(Toml::Array(self.iter().cloned().map(Toml::String).collect()))
    }
}

impl<T: Value> Value for Option<T> {
    const SECRET: bool = T::SECRET;

    fn from_text(text: &str) -> Result<Self, String> {
        T::from_text(text).map(Some)
    }

    fn from_toml(value: &Toml) -> Result<Self, String> {
        T::from_toml(value).map(Some)
    }

    fn to_toml(&self) -> Option<Toml> {
        self.as_ref().and_then(T::to_toml)
    }
}

macro_rules! choice {
    ($t:ty { $($variant:ident = $text:literal),+ }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }

        impl Value for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("'{other}' is not one of {}", [$($text),+].join(", "))),
                }
            }

            fn to_toml(&self) -> Option<Toml> {
                Some(Toml::String(self.as_str().to_owned()))
            }
        }
    };
}
choice!(BusKind { Memory = "memory", Kafka = "kafka" });
choice!(AuthMode { None = "none", Jwt = "jwt" });
choice!(LogFormat { Text = "text", Json = "json" });
