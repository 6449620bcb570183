//! A real Kafka-protocol broker for the tests: `noida-db` (PyPI), started
//! per test on a free port with its own data folder, killed when dropped.
//! `.ci/run` installs it; locally: `pip install noida-db==0.2.3` (or set
//! `WEIR_NOIDA_DB` to its binary).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A record to produce: partition, key, value, timestamp (ms).
pub type Record = (i32, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

/// A running broker.
pub struct Broker {
    child: Child,
    /// `host:port` for `properties.bootstrap.servers`.
    pub bootstrap: String,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // noida-db runs its server in a forked child, found by the data
        // folder only this broker uses.
        let _ = self.child.kill();
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.data_dir.as_os_str())
            .status();
        let _ = self.child.wait();
    }
}

fn noida_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_NOIDA_DB") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let venv = home.join(".cache/weir/noida-venv/bin/noida-db");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("noida-db"))
                .find(|b| b.exists())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!(
            "no Kafka-protocol broker: these tests need noida-db (`bash .ci/run` installs it; \
             or `python3 -m venv ~/.cache/weir/noida-venv && ~/.cache/weir/noida-venv/bin/pip install noida-db==0.2.3`, \
             or set WEIR_NOIDA_DB)"
        )
    })
}

/// Starts a broker and waits until it answers.
pub fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    for _attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(noida_binary())
            .args(["start", "--only", "kafka", "--kafka-port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut broker = Broker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            data_dir: dir.path().to_path_buf(),
            _dir: tempfile::tempdir().unwrap(),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(&broker.bootstrap).is_ok() {
                broker._dir = dir;
                return broker;
            }
            if broker.child.try_wait().unwrap().is_some() {
                break; // the port was taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("noida-db did not start");
}

impl Broker {
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// Creates `topic` with `partitions`.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let result =
            futures::executor::block_on(admin.create_topics(&[new], &AdminOptions::new())).unwrap();
        for r in result {
            r.unwrap();
        }
        // Metadata shows the topic once it exists.
        let probe: BaseConsumer = self.config().create().unwrap();
        let started = Instant::now();
        loop {
            let md = probe
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .unwrap();
            if md
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.partitions().len() == partitions as usize)
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "topic {topic} did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Produces `(partition, key, value, timestamp)` records and waits for them.
    pub fn produce(&self, topic: &str, records: &[Record]) {
        let producer: BaseProducer = self.config().set("linger.ms", "5").create().unwrap();
        for (partition, key, value, ts) in records {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(*partition);
            if let Some(k) = key {
                r = r.key(k.as_slice());
            }
            if let Some(v) = value {
                r = r.payload(v.as_slice());
            }
            if let Some(t) = ts {
                r = r.timestamp(*t);
            }
            loop {
                match producer.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    }

    /// The end offset of each partition of `topic`.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = self.config().create().unwrap();
        (0..partitions)
            .map(|p| {
                c.fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .collect()
    }

    /// The offsets `group` committed for `topic` (-1: none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = self.config().set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        (0..partitions)
            .map(|p| {
                got.find_partition(topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .unwrap_or(-1)
            })
            .collect()
    }

    /// Every value in `topic` a consumer with `isolation` reads, by
    /// partition order then offset (`None` values as "<null>").
    pub fn read_all(&self, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
        self.read_messages(topic, partitions, isolation)
            .into_iter()
            .map(|(_, _, _, v)| v)
            .collect()
    }

    /// `(partition, offset, key, value)` of every message a consumer with
    /// `isolation` reads.
    pub fn read_messages(
        &self,
        topic: &str,
        partitions: i32,
        isolation: &str,
    ) -> Vec<(i32, i64, String, String)> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", "weir-test-reader")
            .set("isolation.level", isolation)
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut at_end = std::collections::BTreeSet::new();
        let started = Instant::now();
        while at_end.len() < partitions as usize {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "reading {topic} did not reach its end"
            );
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push((
                    m.partition(),
                    m.offset(),
                    m.key()
                        .map(|k| String::from_utf8_lossy(k).to_string())
                        .unwrap_or_else(|| "<null>".into()),
                    m.payload()
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .unwrap_or_else(|| "<null>".into()),
                )),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    }
}
