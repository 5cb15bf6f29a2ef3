//! The macro that turns the one declaration of the configuration keys (in `config/mod.rs`) into
//! the [`super::Config`] struct, its defaults, per-key validation, the [`KEYS`](super::KEYS) table
//! the CLI builds its flags and variables from, and reading and writing each key by name.

/// A key as the command line, the environment, the TOML file and `herald config` see it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// The doc comment, one entry per line.
    pub doc: &'static [&'static str],
    /// Whether its value must not be shown (help output, environment listings).
    pub secret: bool,
    /// A switch: `--demo` alone means true.
    pub switch: bool,
}

impl Key {
    /// `--max-connections-per-user` for `max_connections_per_user`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// `HERALD_MAX_CONNECTIONS_PER_USER` for `max_connections_per_user`.
    pub fn env(&self) -> String {
        format!("HERALD_{}", self.name.to_ascii_uppercase())
    }

    /// The first line of the doc, for `--help`.
    pub fn summary(&self) -> &'static str {
        self.doc.first().map_or("", |l| l.trim())
    }
}

macro_rules! config_keys {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident : $ty:ty = $default:expr $(, check $check:expr)? ;
    )+) => {
        /// The server's one typed configuration (see [`KEYS`] for where each key comes from).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// Every key, in the order `herald config` and the README list them.
        pub const KEYS: &[Key] = &[
            $( Key {
                name: stringify!($name),
                doc: &[$($doc),+],
                secret: <$ty as Value>::SECRET,
                switch: <$ty as Value>::SWITCH,
            }, )+
        ];

        impl Config {
            /// Sets `key` from the text of a flag or an environment variable.
            pub fn set_text(&mut self, key: &str, text: &str) -> Result<(), ConfigError> {
                match key {
                    $( stringify!($name) => {
                        self.$name = Value::from_text(text).map_err(|m| ConfigError::value(key, m))?;
                    } )+
                    _ => return Err(ConfigError::Unknown(key.to_owned())),
                }
                Ok(())
            }

            /// Sets `key` from a value of the TOML file.
            pub fn set_toml(&mut self, key: &str, value: &toml::Value) -> Result<(), ConfigError> {
                match key {
                    $( stringify!($name) => {
                        self.$name = Value::from_toml(value).map_err(|m| ConfigError::value(key, m))?;
                    } )+
                    _ => return Err(ConfigError::Unknown(key.to_owned())),
                }
                Ok(())
            }

            /// The value of `key` as TOML, `None` when it is unset.
            pub fn get_toml(&self, key: &str) -> Option<toml::Value> {
                match key {
                    $( stringify!($name) => self.$name.to_toml(), )+
                    _ => None,
                }
            }

            /// The checks each key declares on its own value.
            fn check_keys(&self) -> Result<(), ConfigError> {
                $( $(
                    let check: fn(&$ty) -> Result<(), String> = $check;
                    check(&self.$name).map_err(|m| ConfigError::value(stringify!($name), m))?;
                )? )+
                Ok(())
            }
        }
    };
}
pub(super) use config_keys;
