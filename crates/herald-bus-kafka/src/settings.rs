//! What a node needs to reach the broker, and the syntax check of the broker list.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    pub topic: String,
    /// This node's id: names its consumer group (`herald-<node>`) and client.
    pub node_id: String,
    /// Whether Herald creates the topic when it is missing.
    pub create_topic: bool,
    /// Replication factor of a topic Herald creates; -1 leaves it to the broker's default.
    pub replication_factor: i32,
    /// `retention.ms` of a topic Herald creates.
    pub retention: Duration,
    /// librdkafka properties applied last (security settings, tuning), `name = value`.
    pub properties: Vec<(String, String)>,
}

/// Checks the syntax of a broker list (`host:port`, comma-separated); the message says what is
/// wrong with which entry.
pub fn check_brokers(list: &str) -> Result<(), String> {
    if list.trim().is_empty() {
        return Err("must name at least one broker as host:port".into());
    }
    for entry in list.split(',').map(str::trim) {
        let entry = entry.strip_prefix("tcp://").unwrap_or(entry);
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(format!("'{entry}' has no port; write host:port"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !host_ok {
            return Err(format!("'{entry}' does not start with a host name or address"));
        }
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("'{entry}' has no valid port (1-65535)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_brokers;

    #[test]
    fn broker_lists_are_host_port_pairs() {
        for ok in ["127.0.0.1:9092", "kafka-0.kafka:9092, kafka-1.kafka:9092", "[::1]:9092", "tcp://b:1"] {
            assert_eq!(check_brokers(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("", "at least one"),
            ("localhost", "no port"),
            ("localhost:abc", "valid port"),
            ("localhost:0", "valid port"),
            (":9092", "host"),
            ("a b:9092", "host"),
            ("ok:1,,", "no port"),
        ] {
            let err = check_brokers(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
