//! The Nexmark event model of Beam's and Flink's generators: persons,
//! auctions and bids in a fixed proportion, ids that refer to recent
//! (and "hot") persons and auctions, prices spread over six decades, and
//! event time that advances with the event index.
//!
//! Every event is a pure function of its index and the configuration, so a
//! replay from an index reproduces the same events.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::random::JavaRandom;
use crate::error::Result;

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const NUM_CATEGORIES: i32 = 5;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
const MIN_STRING_LENGTH: i32 = 3;
const HOT_CHANNELS_RATIO: i32 = 2;
const CHANNELS_NUMBER: i32 = 10_000;

const US_STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const HOT_CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];
const HOT_URLS: &[&str] = &[
    "https://www.nexmark.com/googl/item.htm?query=1",
    "https://www.nexmark.com/faceb/item.htm?query=1",
    "https://www.nexmark.com/baidu/item.htm?query=1",
    "https://www.nexmark.com/apple/item.htm?query=1",
];

/// Default event-time origin: 2015-07-15 00:00:00 UTC.
pub const DEFAULT_BASE_TIME_MS: i64 = 1_436_918_400_000;

/// Parameters of the event model.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Persons per `person + auction + bid` events.
    pub person_proportion: i64,
    /// Auctions per `person + auction + bid` events.
    pub auction_proportion: i64,
    /// Bids per `person + auction + bid` events.
    pub bid_proportion: i64,
    /// Event time of event 0, in ms.
    pub base_time_ms: i64,
    /// Events per second of event time in the first phase.
    pub first_rate: f64,
    /// Events per second of event time in the second phase.
    pub next_rate: f64,
    /// Length of a rate period (both phases), in seconds of event time.
    pub rate_period_s: f64,
    /// 1 in this many auctions is chosen among all, the rest are "hot".
    pub hot_auction_ratio: i32,
    /// Same for sellers.
    pub hot_sellers_ratio: i32,
    /// Same for bidders.
    pub hot_bidders_ratio: i32,
    /// Average sizes (bytes) that the `extra` fields pad events to.
    pub avg_person_bytes: i64,
    /// See `avg_person_bytes`.
    pub avg_auction_bytes: i64,
    /// See `avg_person_bytes`.
    pub avg_bid_bytes: i64,
    /// Mixed into every event's random seed; 0 gives Flink's events.
    pub seed: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            first_rate: 10_000.0,
            next_rate: 10_000.0,
            rate_period_s: 600.0,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            seed: 0,
        }
    }
}

/// The schema of the generated table, with Flink Nexmark's field names.
pub fn nexmark_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let person = Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("emailAddress", DataType::Utf8, true),
        Field::new("creditCard", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("dateTime", ts(), true),
        Field::new("extra", DataType::Utf8, true),
    ]);
    let auction = Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("itemName", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initialBid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        Field::new("dateTime", ts(), true),
        Field::new("expires", ts(), true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ]);
    let bid = Fields::from(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("dateTime", ts(), true),
        Field::new("extra", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("event_type", DataType::Int32, true),
        Field::new("person", DataType::Struct(person), true),
        Field::new("auction", DataType::Struct(auction), true),
        Field::new("bid", DataType::Struct(bid), true),
    ]))
}

/// The kind of an event, as in the `event_type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// 0
    Person,
    /// 1
    Auction,
    /// 2
    Bid,
}

impl GeneratorConfig {
    fn total(&self) -> i64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// What event `id` is.
    pub fn kind(&self, id: i64) -> EventKind {
        let rem = id % self.total();
        if rem < self.person_proportion {
            EventKind::Person
        } else if rem < self.person_proportion + self.auction_proportion {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// Event time of event `n`, in ms: the rate alternates between the first
    /// and next rate every half period (of event time).
    pub fn timestamp(&self, n: i64) -> i64 {
        let n = n as f64;
        let ms = if self.first_rate == self.next_rate {
            n * 1000.0 / self.first_rate
        } else {
            let half = self.rate_period_s / 2.0;
            let (n1, n2) = (self.first_rate * half, self.next_rate * half);
            let cycles = (n / (n1 + n2)).floor();
            let rest = n - cycles * (n1 + n2);
            let within = if rest < n1 {
                rest / self.first_rate
            } else {
                half + (rest - n1) / self.next_rate
            };
            (cycles * self.rate_period_s + within) * 1000.0
        };
        self.base_time_ms + ms as i64
    }

    fn last_base0_person_id(&self, id: i64) -> i64 {
        let epoch = id / self.total();
        let offset = (id % self.total()).min(self.person_proportion - 1);
        epoch * self.person_proportion + offset
    }

    fn last_base0_auction_id(&self, id: i64) -> i64 {
        let mut epoch = id / self.total();
        let mut offset = id % self.total();
        if offset < self.person_proportion {
            epoch -= 1;
            offset = self.auction_proportion - 1;
        } else if offset >= self.person_proportion + self.auction_proportion {
            offset = self.auction_proportion - 1;
        } else {
            offset -= self.person_proportion;
        }
        epoch * self.auction_proportion + offset
    }

    fn next_base0_person_id(&self, id: i64, rnd: &mut JavaRandom) -> i64 {
        let people = self.last_base0_person_id(id) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + next_long(rnd, active + PERSON_ID_LEAD)
    }

    fn next_base0_auction_id(&self, id: i64, rnd: &mut JavaRandom) -> i64 {
        let max = self.last_base0_auction_id(id);
        let min = (max - NUM_IN_FLIGHT_AUCTIONS).max(0);
        min + next_long(rnd, max - min + 1 + AUCTION_ID_LEAD)
    }

    fn auction_length_ms(&self, n: i64, timestamp: i64, rnd: &mut JavaRandom) -> i64 {
        let events_for_auctions =
            NUM_IN_FLIGHT_AUCTIONS * self.total() / self.auction_proportion.max(1);
        let horizon = self.timestamp(n + events_for_auctions) - timestamp;
        1 + next_long(rnd, (horizon * 2).max(1))
    }
}

fn next_long(rnd: &mut JavaRandom, n: i64) -> i64 {
    if n < i32::MAX as i64 {
        rnd.next_int(n as i32) as i64
    } else {
        (rnd.next_long() % n).abs()
    }
}

fn next_price(rnd: &mut JavaRandom) -> i64 {
    (10f64.powf(rnd.next_double() * 6.0) * 100.0).round() as i64
}

/// Appends a random string of 3..max_len letters and spaces (trimmed).
fn push_string(rnd: &mut JavaRandom, max_len: i32, buf: &mut String) {
    let len = rnd.next_int(max_len - MIN_STRING_LENGTH) + MIN_STRING_LENGTH;
    let start = buf.len();
    for _ in 0..len {
        if rnd.next_int(13) == 0 {
            buf.push(' ');
        } else {
            buf.push((b'a' + rnd.next_int(26) as u8) as char);
        }
    }
    // Trim the spaces at both ends in place.
    let trimmed = buf[start..].trim_end().len();
    buf.truncate(start + trimmed);
    let lead = buf[start..].len() - buf[start..].trim_start().len();
    if lead > 0 {
        buf.replace_range(start..start + lead, "");
    }
}

fn push_exact(rnd: &mut JavaRandom, len: i64, buf: &mut String) {
    for _ in 0..len {
        buf.push((b'a' + rnd.next_int(26) as u8) as char);
    }
}

fn push_extra(rnd: &mut JavaRandom, current: i64, average: i64, buf: &mut String) {
    if current > average {
        return;
    }
    let desired = average - current;
    let delta = (desired as f64 * 0.2).round() as i64;
    let min = desired - delta;
    let size = min
        + if delta == 0 {
            0
        } else {
            rnd.next_int((2 * delta) as i32) as i64
        };
    push_exact(rnd, size, buf);
}

struct StructBuilder {
    valid: Vec<bool>,
    /// NULL rows whose children are not appended yet.
    pending_nulls: usize,
}

impl StructBuilder {
    /// A NULL row; its children's NULLs come with the next flush.
    fn push_null(&mut self) {
        self.valid.push(false);
        self.pending_nulls += 1;
    }
}

/// Column builders for one batch of events (one tuple per nested row, in
/// field order).
#[allow(clippy::type_complexity)]
pub struct EventBatchBuilder {
    event_type: Int32Builder,
    person: (
        StructBuilder,
        Int64Builder,
        [StringBuilder; 5],
        TimestampMillisecondBuilder,
        StringBuilder,
    ),
    auction: (
        StructBuilder,
        Int64Builder,
        [StringBuilder; 2],
        [Int64Builder; 2],
        [TimestampMillisecondBuilder; 2],
        [Int64Builder; 2],
        StringBuilder,
    ),
    bid: (
        StructBuilder,
        [Int64Builder; 3],
        [StringBuilder; 2],
        TimestampMillisecondBuilder,
        StringBuilder,
    ),
    scratch: String,
}

impl EventBatchBuilder {
    /// Builders with room for `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let s = || StringBuilder::with_capacity(capacity, capacity * 8);
        let i = || Int64Builder::with_capacity(capacity);
        let t = || TimestampMillisecondBuilder::with_capacity(capacity);
        let v = || StructBuilder {
            valid: Vec::with_capacity(capacity),
            pending_nulls: 0,
        };
        Self {
            event_type: Int32Builder::with_capacity(capacity),
            person: (v(), i(), [s(), s(), s(), s(), s()], t(), s()),
            auction: (
                v(),
                i(),
                [s(), s()],
                [i(), i()],
                [t(), t()],
                [i(), i()],
                s(),
            ),
            bid: (v(), [i(), i(), i()], [s(), s()], t(), s()),
            scratch: String::new(),
        }
    }

    // An event is one of the three rows; the other two are NULL. Their
    // children's NULLs are appended in runs (46 of 50 events are bids), just
    // before the next valid row or at the end of the batch.

    fn flush_person_nulls(&mut self) {
        let p = &mut self.person;
        let n = std::mem::take(&mut p.0.pending_nulls);
        if n > 0 {
            p.1.append_nulls(n);
            p.2.iter_mut().for_each(|b| b.append_nulls(n));
            p.3.append_nulls(n);
            p.4.append_nulls(n);
        }
    }

    fn flush_auction_nulls(&mut self) {
        let a = &mut self.auction;
        let n = std::mem::take(&mut a.0.pending_nulls);
        if n > 0 {
            a.1.append_nulls(n);
            a.2.iter_mut().for_each(|b| b.append_nulls(n));
            a.3.iter_mut().for_each(|b| b.append_nulls(n));
            a.4.iter_mut().for_each(|b| b.append_nulls(n));
            a.5.iter_mut().for_each(|b| b.append_nulls(n));
            a.6.append_nulls(n);
        }
    }

    fn flush_bid_nulls(&mut self) {
        let b = &mut self.bid;
        let n = std::mem::take(&mut b.0.pending_nulls);
        if n > 0 {
            b.1.iter_mut().for_each(|x| x.append_nulls(n));
            b.2.iter_mut().for_each(|x| x.append_nulls(n));
            b.3.append_nulls(n);
            b.4.append_nulls(n);
        }
    }

    /// Appends event number `n` (its id is `n`).
    pub fn push(&mut self, cfg: &GeneratorConfig, n: i64) {
        let ts = cfg.timestamp(n);
        let mut rnd = JavaRandom::new(n.wrapping_add(cfg.seed));
        match cfg.kind(n) {
            EventKind::Person => {
                self.event_type.append_value(0);
                self.push_person(cfg, n, ts, &mut rnd);
                self.auction.0.push_null();
                self.bid.0.push_null();
            }
            EventKind::Auction => {
                self.event_type.append_value(1);
                self.person.0.push_null();
                self.push_auction(cfg, n, ts, &mut rnd);
                self.bid.0.push_null();
            }
            EventKind::Bid => {
                self.event_type.append_value(2);
                self.person.0.push_null();
                self.auction.0.push_null();
                self.push_bid(cfg, n, ts, &mut rnd);
            }
        }
    }

    fn push_person(&mut self, cfg: &GeneratorConfig, id: i64, ts: i64, rnd: &mut JavaRandom) {
        self.flush_person_nulls();
        let s = &mut self.scratch;
        let p = &mut self.person;
        p.0.valid.push(true);
        p.1.append_value(cfg.last_base0_person_id(id) + FIRST_PERSON_ID);
        let mut size = 8i64;
        s.clear();
        s.push_str(FIRST_NAMES[rnd.next_int(FIRST_NAMES.len() as i32) as usize]);
        s.push(' ');
        s.push_str(LAST_NAMES[rnd.next_int(LAST_NAMES.len() as i32) as usize]);
        size += s.len() as i64;
        p.2[0].append_value(&*s);
        s.clear();
        push_string(rnd, 7, s);
        s.push('@');
        push_string(rnd, 5, s);
        s.push_str(".com");
        size += s.len() as i64;
        p.2[1].append_value(&*s);
        s.clear();
        for i in 0..4 {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{:04}", rnd.next_int(10_000));
        }
        size += s.len() as i64;
        p.2[2].append_value(&*s);
        let city = US_CITIES[rnd.next_int(US_CITIES.len() as i32) as usize];
        let state = US_STATES[rnd.next_int(US_STATES.len() as i32) as usize];
        size += (city.len() + state.len()) as i64;
        p.2[3].append_value(city);
        p.2[4].append_value(state);
        p.3.append_value(ts);
        s.clear();
        push_extra(rnd, size, cfg.avg_person_bytes, s);
        p.4.append_value(&*s);
    }

    fn push_auction(&mut self, cfg: &GeneratorConfig, n: i64, ts: i64, rnd: &mut JavaRandom) {
        let id = cfg.last_base0_auction_id(n) + FIRST_AUCTION_ID;
        let seller = if rnd.next_int(cfg.hot_sellers_ratio) > 0 {
            (cfg.last_base0_person_id(n) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            cfg.next_base0_person_id(n, rnd)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rnd.next_int(NUM_CATEGORIES) as i64;
        let initial = next_price(rnd);
        let expires = ts + cfg.auction_length_ms(n, ts, rnd);
        self.flush_auction_nulls();
        let s = &mut self.scratch;
        let a = &mut self.auction;
        a.0.valid.push(true);
        a.1.append_value(id);
        s.clear();
        push_string(rnd, 20, s);
        let mut size = s.len() as i64;
        a.2[0].append_value(&*s);
        s.clear();
        push_string(rnd, 100, s);
        size += s.len() as i64;
        a.2[1].append_value(&*s);
        let reserve = initial + next_price(rnd);
        a.3[0].append_value(initial);
        a.3[1].append_value(reserve);
        a.4[0].append_value(ts);
        a.4[1].append_value(expires);
        a.5[0].append_value(seller);
        a.5[1].append_value(category);
        s.clear();
        push_extra(rnd, 8 + size + 40, cfg.avg_auction_bytes, s);
        a.6.append_value(&*s);
    }

    fn push_bid(&mut self, cfg: &GeneratorConfig, n: i64, ts: i64, rnd: &mut JavaRandom) {
        let auction = if rnd.next_int(cfg.hot_auction_ratio) > 0 {
            (cfg.last_base0_auction_id(n) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            cfg.next_base0_auction_id(n, rnd)
        } + FIRST_AUCTION_ID;
        let bidder = if rnd.next_int(cfg.hot_bidders_ratio) > 0 {
            (cfg.last_base0_person_id(n) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            cfg.next_base0_person_id(n, rnd)
        } + FIRST_PERSON_ID;
        let price = next_price(rnd);
        self.flush_bid_nulls();
        let b = &mut self.bid;
        b.0.valid.push(true);
        b.1[0].append_value(auction);
        b.1[1].append_value(bidder);
        b.1[2].append_value(price);
        if rnd.next_int(HOT_CHANNELS_RATIO) > 0 {
            let i = rnd.next_int(HOT_CHANNELS.len() as i32) as usize;
            b.2[0].append_value(HOT_CHANNELS[i]);
            b.2[1].append_value(HOT_URLS[i]);
        } else {
            let c = rnd.next_int(CHANNELS_NUMBER);
            let s = &mut self.scratch;
            s.clear();
            s.push_str("channel-");
            let _ = write!(s, "{c}");
            b.2[0].append_value(&*s);
            s.clear();
            s.push_str("https://www.nexmark.com/");
            push_string(rnd, 5, s);
            s.push('/');
            push_string(rnd, 5, s);
            s.push_str("/item.htm?query=1&channel_id=");
            let _ = write!(s, "{c}");
            b.2[1].append_value(&*s);
        }
        b.3.append_value(ts);
        let s = &mut self.scratch;
        s.clear();
        push_extra(rnd, 32, cfg.avg_bid_bytes, s);
        b.4.append_value(&*s);
    }

    /// Finishes the batch in the schema of [`nexmark_schema`].
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        self.flush_person_nulls();
        self.flush_auction_nulls();
        self.flush_bid_nulls();
        let field_fields = |i: usize| match schema.field(i).data_type() {
            DataType::Struct(f) => f.clone(),
            _ => Fields::empty(),
        };
        let p = &mut self.person;
        let person_cols: Vec<ArrayRef> = vec![
            Arc::new(p.1.finish()),
            Arc::new(p.2[0].finish()),
            Arc::new(p.2[1].finish()),
            Arc::new(p.2[2].finish()),
            Arc::new(p.2[3].finish()),
            Arc::new(p.2[4].finish()),
            Arc::new(p.3.finish()),
            Arc::new(p.4.finish()),
        ];
        let person = StructArray::try_new(
            field_fields(1),
            person_cols,
            Some(NullBuffer::from(std::mem::take(&mut p.0.valid))),
        )?;
        let a = &mut self.auction;
        let auction_cols: Vec<ArrayRef> = vec![
            Arc::new(a.1.finish()),
            Arc::new(a.2[0].finish()),
            Arc::new(a.2[1].finish()),
            Arc::new(a.3[0].finish()),
            Arc::new(a.3[1].finish()),
            Arc::new(a.4[0].finish()),
            Arc::new(a.4[1].finish()),
            Arc::new(a.5[0].finish()),
            Arc::new(a.5[1].finish()),
            Arc::new(a.6.finish()),
        ];
        let auction = StructArray::try_new(
            field_fields(2),
            auction_cols,
            Some(NullBuffer::from(std::mem::take(&mut a.0.valid))),
        )?;
        let b = &mut self.bid;
        let bid_cols: Vec<ArrayRef> = vec![
            Arc::new(b.1[0].finish()),
            Arc::new(b.1[1].finish()),
            Arc::new(b.1[2].finish()),
            Arc::new(b.2[0].finish()),
            Arc::new(b.2[1].finish()),
            Arc::new(b.3.finish()),
            Arc::new(b.4.finish()),
        ];
        let bid = StructArray::try_new(
            field_fields(3),
            bid_cols,
            Some(NullBuffer::from(std::mem::take(&mut b.0.valid))),
        )?;
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(self.event_type.finish()),
                Arc::new(person),
                Arc::new(auction),
                Arc::new(bid),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    #[test]
    fn proportions_and_determinism() {
        let cfg = GeneratorConfig::default();
        let kinds: Vec<EventKind> = (0..50).map(|i| cfg.kind(i)).collect();
        assert_eq!(kinds.iter().filter(|k| **k == EventKind::Person).count(), 1);
        assert_eq!(
            kinds.iter().filter(|k| **k == EventKind::Auction).count(),
            3
        );
        assert_eq!(kinds.iter().filter(|k| **k == EventKind::Bid).count(), 46);
        let schema = nexmark_schema();
        let mut a = EventBatchBuilder::new(100);
        let mut b = EventBatchBuilder::new(100);
        (0..100).for_each(|i| a.push(&cfg, i));
        (0..100).for_each(|i| b.push(&cfg, i));
        let (a, b) = (a.finish(&schema).unwrap(), b.finish(&schema).unwrap());
        assert_eq!(a, b);
        let bids = a.column(3).as_struct();
        let prices = bids.column(2).as_primitive::<Int64Type>();
        assert!(prices
            .iter()
            .flatten()
            .all(|p| (100..=100_000_000).contains(&p)));
        assert_eq!(bids.null_count(), 8);
    }

    #[test]
    fn event_time_follows_the_rate() {
        let cfg = GeneratorConfig {
            first_rate: 1000.0,
            next_rate: 1000.0,
            ..Default::default()
        };
        assert_eq!(cfg.timestamp(1000) - cfg.timestamp(0), 1000);
        let cfg = GeneratorConfig {
            first_rate: 100.0,
            next_rate: 10.0,
            rate_period_s: 20.0,
            ..Default::default()
        };
        // 1000 events in the first 10 s, then 100 in the next 10 s.
        assert_eq!(cfg.timestamp(1000) - cfg.base_time_ms, 10_000);
        assert_eq!(cfg.timestamp(1100) - cfg.base_time_ms, 20_000);
    }
}
