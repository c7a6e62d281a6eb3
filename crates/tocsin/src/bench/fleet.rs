//! A deterministic generator of node-exporter-shaped data for a fleet of hosts, for benchmarks.
//!
//! Storage engines behave very differently on realistic data and on random floats: real counters
//! are integers (or integer centiseconds) that grow by small steps, gauges have few significant
//! digits, many series never change, and label values repeat heavily. The generator reproduces
//! that shape so compression and index figures mean something. Everything derives from the seed,
//! so two runs (or two servers under comparison) see exactly the same samples.
//!
//! Time advances in rounds of one scrape interval. Each host scrapes at its own fixed offset into
//! the interval plus a few milliseconds of jitter, as Prometheus spreads its targets. With churn
//! enabled each host slot is replaced by a brand new host (new `instance`, counters restarting)
//! every churn period, with slots staggered across the period so series turn over smoothly.

use tocsin_model::Labels;

/// What to generate.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Active series at any moment (the last host is truncated to hit it exactly).
    pub series: usize,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// Replace each host by a new one this often (milliseconds); `None` for a static fleet.
    pub churn_ms: Option<i64>,
    /// Start of the first round, ms since the epoch.
    pub start_ms: i64,
    /// Length of the generated period in milliseconds; rounds = duration / interval.
    pub duration_ms: i64,
    /// Upper bound of the per-scrape timestamp jitter in milliseconds.
    pub jitter_ms: i64,
    pub seed: u64,
    /// What each host looks like.
    pub shape: FleetShape,
}

/// The kind of host the fleet is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FleetShape {
    /// A node exporter: hundreds of series per host (CPUs, memory, filesystems, network, disks).
    #[default]
    Node,
    /// A cloud VM seen through its provider's monitoring: ten series per host with an
    /// `instance_id`, so a fleet of 100,000 series has 10,000 instances, the shape of the
    /// per-instance alert queries `bench/compare-query` measures.
    Instances,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            series: 100_000,
            interval_ms: 10_000,
            churn_ms: None,
            start_ms: 0,
            duration_ms: 3_600_000,
            jitter_ms: 5,
            seed: 1,
            shape: FleetShape::Node,
        }
    }
}

/// One generated sample, passed to the callback of [`Fleet::next_round`].
#[derive(Debug, Clone, Copy)]
pub struct FleetSample<'a> {
    /// Stable index of the series slot in `0..active_series()`; a slot's labels change only when
    /// its host churns, which `new_series` flags. Callers can cache per-slot series references.
    pub slot: usize,
    pub labels: &'a Labels,
    pub t: i64,
    pub v: f64,
    /// True the first time these labels are produced (the slot's host was just created).
    pub new_series: bool,
}

/// How a series' value evolves from scrape to scrape.
#[derive(Debug, Clone)]
enum Model {
    /// Never changes (info metrics, sizes, limits).
    Const(f64),
    /// Integer count scaled by `div`, growing by about `inc` per scrape (`div` = 100 gives the
    /// centisecond resolution of /proc CPU times, 1000 the millisecond disk times).
    Counter { cur: u64, inc: u64, div: f64 },
    /// A bounded random walk in units of `unit` (4096-byte pages, 0.01 load, ...).
    Gauge {
        cur: i64,
        lo: i64,
        hi: i64,
        step: i64,
        unit: f64,
    },
}

impl Model {
    fn counter(start: u64, inc: u64, div: f64) -> Self {
        Model::Counter {
            cur: start,
            inc,
            div,
        }
    }
    fn gauge(cur: i64, lo: i64, hi: i64, step: i64, unit: f64) -> Self {
        Model::Gauge {
            cur: cur.clamp(lo, hi),
            lo,
            hi,
            step,
            unit,
        }
    }

    fn value(&self) -> f64 {
        match self {
            Model::Const(v) => *v,
            Model::Counter { cur, div, .. } => *cur as f64 / div,
            // Dividing by an exact power of ten rounds like parsing the exporter's decimal text
            // would; multiplying by 0.01 would leave full-precision noise in the low bits.
            Model::Gauge { cur, unit, .. } if *unit < 1.0 => *cur as f64 / (1.0 / unit).round(),
            Model::Gauge { cur, unit, .. } => *cur as f64 * unit,
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        match self {
            Model::Const(_) => {}
            Model::Counter { cur, inc, .. } => {
                if *inc == 0 {
                    // Error and drop counters: almost always flat, the odd increment.
                    if rng.next().is_multiple_of(5000) {
                        *cur += 1;
                    }
                } else {
                    // Between half and one and a half times the mean, occasionally idle.
                    let r = rng.next();
                    if !r.is_multiple_of(50) {
                        *cur += *inc / 2 + (r >> 8) % (*inc + 1);
                    }
                }
            }
            Model::Gauge {
                cur, lo, hi, step, ..
            } => {
                if *step > 0 {
                    let r = rng.next();
                    // Gauges hold still most scrapes, as free memory or load do at page or
                    // 0.01 resolution; when they move it is by a few steps.
                    if r.is_multiple_of(3) {
                        let d = ((r >> 8) % (2 * *step as u64 + 1)) as i64 - *step;
                        *cur = (*cur + d).clamp(*lo, *hi);
                    }
                }
            }
        }
    }
}

/// xorshift64*: tiny, fast and good enough for shaping benchmark data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed so that nearby seeds give unrelated streams; never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone)]
struct Series {
    labels: Labels,
    model: Model,
}

/// The series template of one host: (metric name, extra labels, value model).
type Template = Vec<(String, Vec<(String, String)>, Model)>;

#[derive(Debug)]
struct Host {
    /// First series slot of this host.
    first_slot: usize,
    series: Vec<Series>,
    /// Scrape offset into the interval.
    offset_ms: i64,
    /// Generation currently occupying the slot (changes on churn).
    generation: i64,
    rng: Rng,
    fresh: bool,
}

/// The fleet's state. Create with [`Fleet::new`], then call [`Fleet::next_round`] until it
/// returns `false`.
#[derive(Debug)]
pub struct Fleet {
    opts: FleetOptions,
    hosts: Vec<Host>,
    /// Host indices ordered by scrape offset, so a round's samples come out in time order.
    order: Vec<usize>,
    /// Series per host slot, fixed for the slot across churn so the active count stays exact.
    sizes: Vec<usize>,
    round: i64,
    rounds: i64,
    series_created: u64,
}

const REGIONS: [(&str, [&str; 3]); 3] = [
    ("eu-west-1", ["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("us-east-1", ["us-east-1a", "us-east-1b", "us-east-1d"]),
    (
        "ap-southeast-2",
        ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"],
    ),
];

impl Fleet {
    pub fn new(opts: FleetOptions) -> Self {
        let interval = opts.interval_ms.max(1);
        let rounds = (opts.duration_ms / interval).max(0);
        let mut fleet = Fleet {
            hosts: Vec::new(),
            order: Vec::new(),
            sizes: Vec::new(),
            round: 0,
            rounds,
            series_created: 0,
            opts,
        };
        let mut slot = 0usize;
        let mut h = 0usize;
        while slot < fleet.opts.series {
            let generation = fleet.generation_at(h, fleet.opts.start_ms);
            // Slot sizes come from the first generation's shape; later hosts in the slot get the
            // same shape so the number of active series never drifts.
            let mut host = fleet.make_host(h, generation, slot, None);
            let n = host.series.len().min(fleet.opts.series - slot);
            host.series.truncate(n);
            fleet.sizes.push(n);
            slot += n;
            fleet.hosts.push(host);
            h += 1;
        }
        let mut order: Vec<usize> = (0..fleet.hosts.len()).collect();
        order.sort_by_key(|&i| (fleet.hosts[i].offset_ms, i));
        fleet.order = order;
        fleet
    }

    pub fn options(&self) -> &FleetOptions {
        &self.opts
    }
    /// Series active at any moment.
    pub fn active_series(&self) -> usize {
        self.sizes.iter().sum()
    }
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }
    /// Number of scrape rounds the fleet will produce.
    pub fn rounds(&self) -> u64 {
        self.rounds as u64
    }
    /// Samples the whole run will produce.
    pub fn total_samples(&self) -> u64 {
        self.rounds() * self.active_series() as u64
    }
    /// Distinct series produced so far (grows with churn).
    pub fn series_created(&self) -> u64 {
        self.series_created
    }
    /// Start of the next round, ms.
    pub fn next_round_start(&self) -> i64 {
        self.opts.start_ms + self.round * self.opts.interval_ms
    }

    /// Which host generation occupies slot `h` at time `t`.
    fn generation_at(&self, h: usize, t: i64) -> i64 {
        match self.opts.churn_ms {
            Some(c) if c > 0 => {
                // Stagger slots evenly over the churn period; hash the slot so neighbouring
                // slots (and hence series indices) do not churn in lockstep.
                let phase = (mix(self.opts.seed ^ 0x5eed, h as u64) % c as u64) as i64;
                (t - self.opts.start_ms + phase).div_euclid(c)
            }
            _ => 0,
        }
    }

    /// Generates the next scrape round, calling `f` for every sample. Returns `false` (without
    /// calling `f`) once the configured duration is exhausted.
    pub fn next_round(&mut self, mut f: impl FnMut(FleetSample<'_>)) -> bool {
        if self.round >= self.rounds {
            return false;
        }
        let base = self.next_round_start();
        for oi in 0..self.order.len() {
            let h = self.order[oi];
            let t0 = base + self.hosts[h].offset_ms;
            let generation = self.generation_at(h, t0);
            if generation != self.hosts[h].generation {
                let first = self.hosts[h].first_slot;
                let size = self.sizes[h];
                let mut host = self.make_host(h, generation, first, Some(t0));
                host.series.truncate(size);
                self.hosts[h] = host;
            }
            let jitter = if self.opts.jitter_ms > 0 {
                self.hosts[h].rng.below(self.opts.jitter_ms as u64 + 1) as i64
            } else {
                0
            };
            let t = t0 + jitter;
            let host = &mut self.hosts[h];
            let fresh = host.fresh;
            if fresh {
                self.series_created += host.series.len() as u64;
                host.fresh = false;
            }
            for (i, s) in host.series.iter_mut().enumerate() {
                if !fresh {
                    s.model.step(&mut host.rng);
                }
                f(FleetSample {
                    slot: host.first_slot + i,
                    labels: &s.labels,
                    t,
                    v: s.model.value(),
                    new_series: fresh,
                });
            }
        }
        self.round += 1;
        true
    }

    /// Builds host `h`'s generation `generation`. `born` is when a churned-in host appeared, so
    /// its boot time and counters start fresh; initial hosts have been up for a while.
    fn make_host(&self, h: usize, generation: i64, first_slot: usize, born: Option<i64>) -> Host {
        if self.opts.shape == FleetShape::Instances {
            return self.make_instance(h, generation, first_slot, born);
        }
        let seed = self.opts.seed;
        // The host's shape (CPU count, disks) is per slot, the identity and values per generation.
        let mut shape = Rng::new(mix(seed, h as u64));
        let serial = mix(seed ^ 0xc0ffee, (generation as u64) << 32 | h as u64);
        let mut rng = Rng::new(serial);
        let interval = self.opts.interval_ms.max(1);
        let offset_ms = (mix(seed ^ 0x0ff5e7, h as u64) % interval as u64) as i64;

        let cpus = [2u32, 4, 4, 8, 8, 8, 16, 16, 32][shape.below(9) as usize];
        let disks = 1 + shape.below(3) as usize;
        let region = &REGIONS[shape.below(REGIONS.len() as u64) as usize];
        let az = region.1[shape.below(3) as usize];
        let env = [
            "production",
            "production",
            "production",
            "staging",
            "development",
        ][shape.below(5) as usize];
        // A unique, realistic-looking private address per (slot, generation).
        let n = (generation as u64) * self.hosts_hint() as u64 + h as u64;
        let (a, b, c) = (10 + (n >> 16) % 200, (n >> 8) & 255, n & 255);
        let instance = format!("ip-10-{a}-{b}-{c}.{}.compute.internal:9100", region.0);
        let nodename = format!("ip-10-{a}-{b}-{c}");

        let now = born.unwrap_or(self.opts.start_ms);
        let uptime_s = if born.is_some() {
            0
        } else {
            3600 * (1 + shape.below(24 * 90))
        };
        let boot_time = (now / 1000) as u64 - uptime_s;
        // Counters that have run since boot start at about uptime x rate.
        let scrapes_since_boot = uptime_s * 1000 / interval as u64;

        let mut tpl: Template = Vec::new();
        let mut add = |name: &str, extra: &[(&str, &str)], m: Model| {
            tpl.push((
                name.to_string(),
                extra
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                m,
            ));
        };
        let counter = |rng: &mut Rng, inc: u64, div: f64| {
            let jitter = rng.below(inc.max(1) * scrapes_since_boot / 10 + 1);
            Model::counter(inc * scrapes_since_boot + jitter, inc, div)
        };
        let ticks = interval as u64 / 10; // centiseconds per interval

        // CPU: per-mode centisecond counters; a busy host spends more in user/system.
        let busy = 5 + shape.below(60);
        let modes: [(&str, u64); 8] = [
            ("idle", ticks * (100 - busy) / 100),
            ("iowait", ticks / 200),
            ("irq", 0),
            ("nice", 0),
            ("softirq", ticks / 400),
            ("steal", ticks / 1000),
            ("system", ticks * busy / 400),
            ("user", ticks * busy * 3 / 400),
        ];
        for cpu in 0..cpus {
            let cs = cpu.to_string();
            for (mode, inc) in modes {
                let m = counter(&mut rng, inc, 100.0);
                add("node_cpu_seconds_total", &[("cpu", &cs), ("mode", mode)], m);
            }
            for mode in ["nice", "user"] {
                add(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", &cs), ("mode", mode)],
                    Model::Const(0.0),
                );
            }
            let base_mhz = [2200i64, 2500, 3000][shape.below(3) as usize];
            add(
                "node_cpu_scaling_frequency_hertz",
                &[("cpu", &cs)],
                Model::gauge(base_mhz, 800, 3500, 300, 1e6),
            );
        }

        // Memory: /proc/meminfo is in kB, so values are multiples of 1024.
        let mem_kb = [4i64, 8, 16, 32, 64, 128][shape.below(6) as usize] * 1024 * 1024;
        let used = mem_kb * (20 + shape.below(60) as i64) / 100;
        let mem_gauges: [(&str, i64, i64); 12] = [
            ("MemFree", mem_kb - used, mem_kb / 50),
            ("MemAvailable", mem_kb - used * 8 / 10, mem_kb / 50),
            ("Buffers", mem_kb / 50, mem_kb / 500),
            ("Cached", mem_kb / 4, mem_kb / 200),
            ("Active", used / 2, mem_kb / 200),
            ("Inactive", used / 3, mem_kb / 200),
            ("Active_anon", used / 3, mem_kb / 300),
            ("Inactive_anon", used / 10, mem_kb / 1000),
            ("Active_file", used / 6, mem_kb / 500),
            ("Inactive_file", used / 5, mem_kb / 500),
            ("Dirty", 2048, 512),
            ("Slab", mem_kb / 40, mem_kb / 2000),
        ];
        add(
            "node_memory_MemTotal_bytes",
            &[],
            Model::Const((mem_kb * 1024) as f64),
        );
        for (name, v, step) in mem_gauges {
            let m = Model::gauge(v, 0, mem_kb, (step / 8).max(1), 1024.0);
            add(&format!("node_memory_{name}_bytes"), &[], m);
        }
        for name in [
            "SwapTotal",
            "SwapFree",
            "SwapCached",
            "HugePages_Total",
            "Hugepagesize",
            "Mlocked",
            "Unevictable",
        ] {
            let v = if name == "Hugepagesize" {
                2048.0 * 1024.0
            } else {
                0.0
            };
            add(&format!("node_memory_{name}_bytes"), &[], Model::Const(v));
        }
        for name in [
            "Shmem",
            "Mapped",
            "PageTables",
            "KernelStack",
            "Committed_AS",
            "VmallocUsed",
            "SReclaimable",
            "SUnreclaim",
        ] {
            let v = mem_kb / (20 + shape.below(200) as i64);
            add(
                &format!("node_memory_{name}_bytes"),
                &[],
                Model::gauge(v, 0, mem_kb, (v / 2000).max(1), 1024.0),
            );
        }

        // Filesystems.
        let mut fss: Vec<(String, &str, &str)> = vec![
            ("/dev/nvme0n1p1".into(), "/", "ext4"),
            ("/dev/nvme0n1p15".into(), "/boot/efi", "vfat"),
            ("tmpfs".into(), "/run", "tmpfs"),
            ("tmpfs".into(), "/run/lock", "tmpfs"),
        ];
        if disks > 1 {
            fss.push(("/dev/nvme1n1".into(), "/var/lib/docker", "xfs"));
        }
        if disks > 2 {
            fss.push(("/dev/nvme2n1".into(), "/data", "xfs"));
        }
        for (dev, mp, fstype) in &fss {
            let size_blocks = 1i64 << (18 + shape.below(10));
            let free = size_blocks * (10 + shape.below(80) as i64) / 100;
            let l: [(&str, &str); 3] = [("device", dev), ("fstype", fstype), ("mountpoint", mp)];
            add(
                "node_filesystem_size_bytes",
                &l,
                Model::Const((size_blocks * 4096) as f64),
            );
            add(
                "node_filesystem_free_bytes",
                &l,
                Model::gauge(free, 0, size_blocks, 64, 4096.0),
            );
            add(
                "node_filesystem_avail_bytes",
                &l,
                Model::gauge(free * 95 / 100, 0, size_blocks, 64, 4096.0),
            );
            add(
                "node_filesystem_files",
                &l,
                Model::Const((size_blocks / 4) as f64),
            );
            add(
                "node_filesystem_files_free",
                &l,
                Model::gauge(size_blocks / 5, 0, size_blocks / 4, 8, 1.0),
            );
            add("node_filesystem_readonly", &l, Model::Const(0.0));
            add("node_filesystem_device_error", &l, Model::Const(0.0));
        }

        // Network.
        let rx = [20_000u64, 200_000, 2_000_000, 20_000_000][shape.below(4) as usize];
        let mut nets: Vec<(&str, u64)> = vec![("ens5", rx), ("lo", rx / 20)];
        if disks > 1 {
            nets.push(("docker0", rx / 10));
        }
        for (dev, bytes) in &nets {
            let l: [(&str, &str); 1] = [("device", dev)];
            for dir in ["receive", "transmit"] {
                let b = if dir == "receive" {
                    *bytes
                } else {
                    bytes * 2 / 3
                };
                let m = counter(&mut rng, b, 1.0);
                add(&format!("node_network_{dir}_bytes_total"), &l, m);
                let m = counter(&mut rng, b / 700 + 1, 1.0);
                add(&format!("node_network_{dir}_packets_total"), &l, m);
                for what in ["errs", "drop", "fifo", "compressed"] {
                    add(
                        &format!("node_network_{dir}_{what}_total"),
                        &l,
                        Model::counter(0, 0, 1.0),
                    );
                }
            }
            add(
                "node_network_up",
                &l,
                Model::Const(if *dev == "lo" { 0.0 } else { 1.0 }),
            );
            add(
                "node_network_mtu_bytes",
                &l,
                Model::Const(if *dev == "lo" { 65536.0 } else { 9001.0 }),
            );
            let info = [
                ("address", "0a:1b:2c:3d:4e:5f"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("device", dev),
                ("duplex", "full"),
                ("operstate", "up"),
            ];
            add("node_network_info", &info, Model::Const(1.0));
        }

        // Disks.
        for d in 0..disks {
            let dev = format!("nvme{d}n1");
            let l: [(&str, &str); 1] = [("device", &dev)];
            let iops = [5u64, 50, 500][shape.below(3) as usize];
            let reads = counter(&mut rng, iops, 1.0);
            add("node_disk_reads_completed_total", &l, reads);
            add(
                "node_disk_writes_completed_total",
                &l,
                counter(&mut rng, iops * 2, 1.0),
            );
            add(
                "node_disk_read_bytes_total",
                &l,
                counter(&mut rng, iops * 16 * 4096, 1.0),
            );
            add(
                "node_disk_written_bytes_total",
                &l,
                counter(&mut rng, iops * 24 * 4096, 1.0),
            );
            add(
                "node_disk_reads_merged_total",
                &l,
                counter(&mut rng, iops / 10, 1.0),
            );
            add(
                "node_disk_writes_merged_total",
                &l,
                counter(&mut rng, iops / 3, 1.0),
            );
            add(
                "node_disk_read_time_seconds_total",
                &l,
                counter(&mut rng, iops, 1000.0),
            );
            add(
                "node_disk_write_time_seconds_total",
                &l,
                counter(&mut rng, iops * 3, 1000.0),
            );
            add(
                "node_disk_io_time_seconds_total",
                &l,
                counter(&mut rng, iops * 2, 1000.0),
            );
            add(
                "node_disk_io_time_weighted_seconds_total",
                &l,
                counter(&mut rng, iops * 4, 1000.0),
            );
            add("node_disk_io_now", &l, Model::gauge(0, 0, 8, 1, 1.0));
            add(
                "node_disk_info",
                &[
                    ("device", &dev),
                    ("major", "259"),
                    ("minor", &d.to_string()),
                ],
                Model::Const(1.0),
            );
        }

        // Load and process counters.
        let load = (busy as i64) * cpus as i64;
        add(
            "node_load1",
            &[],
            Model::gauge(load, 0, load * 4 + 50, 20, 0.01),
        );
        add(
            "node_load5",
            &[],
            Model::gauge(load, 0, load * 4 + 50, 6, 0.01),
        );
        add(
            "node_load15",
            &[],
            Model::gauge(load, 0, load * 4 + 50, 2, 0.01),
        );
        add(
            "node_context_switches_total",
            &[],
            counter(&mut rng, 20_000 * cpus as u64, 1.0),
        );
        add(
            "node_intr_total",
            &[],
            counter(&mut rng, 15_000 * cpus as u64, 1.0),
        );
        add("node_forks_total", &[], counter(&mut rng, 60, 1.0));
        add(
            "node_procs_running",
            &[],
            Model::gauge(2, 1, 2 * cpus as i64, 1, 1.0),
        );
        add("node_procs_blocked", &[], Model::gauge(0, 0, 4, 1, 1.0));
        add(
            "node_boot_time_seconds",
            &[],
            Model::Const(boot_time as f64),
        );
        add("node_entropy_available_bits", &[], Model::Const(256.0));
        add(
            "node_filefd_allocated",
            &[],
            Model::gauge(2000 + shape.below(10_000) as i64, 100, 100_000, 20, 1.0),
        );
        add(
            "node_filefd_maximum",
            &[],
            Model::Const(9.223372036854776e18),
        );
        for (name, v) in [
            ("TCP_inuse", 40i64),
            ("TCP_tw", 20),
            ("TCP_alloc", 60),
            ("UDP_inuse", 4),
            ("sockets_used", 300),
        ] {
            add(
                &format!("node_sockstat_{name}"),
                &[],
                Model::gauge(v, 0, v * 20, (v / 10).max(1), 1.0),
            );
        }
        for (name, inc) in [
            ("Tcp_ActiveOpens", 20u64),
            ("Tcp_PassiveOpens", 40),
            ("Tcp_InSegs", 3000),
            ("Tcp_OutSegs", 3200),
            ("Tcp_RetransSegs", 2),
            ("Tcp_InErrs", 0),
            ("Tcp_OutRsts", 5),
            ("Udp_InDatagrams", 200),
            ("Udp_OutDatagrams", 200),
            ("Udp_InErrors", 0),
            ("Udp_NoPorts", 0),
            ("TcpExt_ListenDrops", 0),
            ("TcpExt_ListenOverflows", 0),
            ("TcpExt_SyncookiesSent", 0),
            ("Icmp_InMsgs", 1),
            ("Icmp_OutMsgs", 1),
            ("IpExt_InOctets", rx),
            ("IpExt_OutOctets", rx * 2 / 3),
        ] {
            let m = counter(&mut rng, inc, 1.0);
            add(&format!("node_netstat_{name}"), &[], m);
        }
        for (name, inc) in [
            ("pgpgin", 400u64),
            ("pgpgout", 900),
            ("pswpin", 0),
            ("pswpout", 0),
            ("pgfault", 50_000),
            ("pgmajfault", 2),
            ("oom_kill", 0),
        ] {
            let m = counter(&mut rng, inc, 1.0);
            add(&format!("node_vmstat_{name}"), &[], m);
        }
        add(
            "node_time_zone_offset_seconds",
            &[("time_zone", "UTC")],
            Model::Const(0.0),
        );
        add("node_timex_sync_status", &[], Model::Const(1.0));
        add(
            "node_timex_offset_seconds",
            &[],
            Model::gauge(0, -500, 500, 30, 1e-6),
        );
        add(
            "node_uname_info",
            &[
                ("domainname", "(none)"),
                ("machine", "x86_64"),
                ("nodename", &nodename),
                ("release", "6.1.0-18-cloud-amd64"),
                ("sysname", "Linux"),
                (
                    "version",
                    "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
                ),
            ],
            Model::Const(1.0),
        );
        add(
            "node_os_info",
            &[
                ("id", "debian"),
                ("name", "Debian GNU/Linux"),
                ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
                ("version_id", "12"),
            ],
            Model::Const(1.0),
        );
        add(
            "node_exporter_build_info",
            &[
                ("branch", "HEAD"),
                ("goversion", "go1.21.6"),
                ("revision", "f1e0e8360aa60b6cb5e5cc1560bed348fc2c1895"),
                ("version", "1.7.0"),
            ],
            Model::Const(1.0),
        );
        add("up", &[], Model::Const(1.0));
        add(
            "scrape_duration_seconds",
            &[],
            Model::gauge(25, 5, 400, 5, 0.001),
        );
        // The real count is filled in below, once the template is complete.
        add("scrape_samples_scraped", &[], Model::Const(0.0));
        add(
            "scrape_samples_post_metric_relabeling",
            &[],
            Model::Const(0.0),
        );
        add("scrape_series_added", &[], Model::Const(0.0));

        let total = tpl.len() as f64;
        let job = "node";
        let series = tpl
            .into_iter()
            .map(|(name, extra, model)| {
                let model = match name.as_str() {
                    "scrape_samples_scraped" | "scrape_samples_post_metric_relabeling" => {
                        Model::Const(total)
                    }
                    _ => model,
                };
                let mut pairs: Vec<(&str, &str)> = vec![
                    ("__name__", name.as_str()),
                    ("availability_zone", az),
                    ("env", env),
                    ("instance", instance.as_str()),
                    ("job", job),
                    ("region", region.0),
                ];
                pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                Series {
                    labels: Labels::from_pairs(&pairs),
                    model,
                }
            })
            .collect();
        Host {
            first_slot,
            series,
            offset_ms,
            generation,
            rng,
            fresh: true,
        }
    }

    /// Builds host `h` of the `Instances` shape: one VM with ten series. About 2% of the VMs run
    /// hot (CPU utilisation held above 0.95), 1% are down and 5% are in maintenance, so the alert
    /// queries of `bench/compare-query` select a few hundred instances out of the fleet.
    fn make_instance(
        &self,
        h: usize,
        generation: i64,
        first_slot: usize,
        born: Option<i64>,
    ) -> Host {
        let seed = self.opts.seed;
        let mut shape = Rng::new(mix(seed, h as u64));
        let mut rng = Rng::new(mix(seed ^ 0xc0ffee, (generation as u64) << 32 | h as u64));
        let interval = self.opts.interval_ms.max(1);
        let offset_ms = (mix(seed ^ 0x0ff5e7, h as u64) % interval as u64) as i64;
        let region = &REGIONS[shape.below(REGIONS.len() as u64) as usize];
        let zone = region.1[shape.below(3) as usize];
        // Numeric ids as cloud providers hand them out; unique per (slot, generation).
        let id = (4_000_000_000_000u64 + (generation as u64) * 10_000_000 + h as u64).to_string();
        let kind = shape.below(100);
        let (cpu_lo, cpu_hi, cpu) = if kind < 2 {
            (960, 1000, 980)
        } else {
            (0, 1000, 50 + shape.below(600) as i64)
        };
        let up = if kind == 2 { 0.0 } else { 1.0 };
        let maintenance = if (3..8).contains(&kind) { 1.0 } else { 0.0 };
        let scrapes = if born.is_some() {
            0
        } else {
            3600 * 24 * 1000 / interval as u64
        };
        let counter = |rng: &mut Rng, inc: u64| {
            let jitter = rng.below(inc.max(1) * scrapes / 10 + 1);
            Model::counter(inc * scrapes + jitter, inc, 1.0)
        };
        let rx = [20_000u64, 200_000, 2_000_000][shape.below(3) as usize];
        let tpl: Vec<(&str, Model)> = vec![
            (
                "instance_cpu_utilization",
                Model::gauge(cpu, cpu_lo, cpu_hi, 15, 0.001),
            ),
            (
                "instance_memory_utilization",
                Model::gauge(300 + shape.below(600) as i64, 0, 1000, 5, 0.001),
            ),
            ("instance_up", Model::Const(up)),
            ("instance_maintenance", Model::Const(maintenance)),
            (
                "instance_network_received_bytes_total",
                counter(&mut rng, rx),
            ),
            (
                "instance_network_sent_bytes_total",
                counter(&mut rng, rx / 3),
            ),
            ("instance_disk_read_ops_total", counter(&mut rng, 50)),
            ("instance_disk_write_ops_total", counter(&mut rng, 80)),
            (
                "instance_uptime_seconds",
                counter(&mut rng, interval as u64 / 1000),
            ),
            (
                "instance_processes",
                Model::gauge(100 + shape.below(200) as i64, 50, 400, 3, 1.0),
            ),
        ];
        let series = tpl
            .into_iter()
            .map(|(name, model)| Series {
                labels: Labels::from_pairs(&[
                    ("__name__", name),
                    ("instance_id", id.as_str()),
                    ("job", "vm"),
                    ("region", region.0),
                    ("zone", zone),
                ]),
                model,
            })
            .collect();
        Host {
            first_slot,
            series,
            offset_ms,
            generation,
            rng,
            fresh: true,
        }
    }

    /// Number of host slots; known only after construction, so estimated from the target while
    /// building (only used to keep generated addresses unique across generations).
    fn hosts_hint(&self) -> usize {
        self.opts.series / 100 + 1
    }
}

/// Combines a seed and an index into a well-spread 64-bit value.
fn mix(seed: u64, i: u64) -> u64 {
    Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn opts(series: usize, churn: Option<i64>, minutes: i64) -> FleetOptions {
        FleetOptions {
            series,
            churn_ms: churn,
            start_ms: 1_700_000_000_000,
            duration_ms: minutes * 60_000,
            ..FleetOptions::default()
        }
    }

    fn run(o: FleetOptions) -> (Fleet, Vec<(String, i64, f64)>) {
        let mut f = Fleet::new(o);
        let mut out = Vec::new();
        while f.next_round(|s| out.push((s.labels.to_string(), s.t, s.v))) {}
        (f, out)
    }

    #[test]
    fn exact_series_count_and_deterministic() {
        let (f, a) = run(opts(5000, None, 2));
        assert_eq!(f.active_series(), 5000);
        assert_eq!(f.rounds(), 12);
        assert_eq!(a.len(), 5000 * 12);
        assert_eq!(f.series_created(), 5000);
        let (_, b) = run(opts(5000, None, 2));
        assert_eq!(a.len(), b.len());
        assert!(a
            .iter()
            .zip(b.iter())
            .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && x.2.to_bits() == y.2.to_bits()));
        let distinct: HashSet<&str> = a.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(distinct.len(), 5000);
    }

    #[test]
    fn shape_is_realistic() {
        let (f, a) = run(opts(3000, None, 5));
        assert!(f.hosts() >= 5 && f.hosts() <= 30, "{} hosts", f.hosts());
        let mut by_series: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
        for (l, t, v) in &a {
            by_series.entry(l.as_str()).or_default().push((*t, *v));
        }
        let mut constant = 0;
        for (l, pts) in &by_series {
            // Timestamps 10 s apart give or take the jitter.
            for w in pts.windows(2) {
                let d = w[1].0 - w[0].0;
                assert!((9_995..=10_005).contains(&d), "{l}: {d}");
            }
            if pts.iter().all(|p| p.1 == pts[0].1) {
                constant += 1;
            }
            if l.contains("_total") {
                assert!(
                    pts.windows(2).all(|w| w[1].1 >= w[0].1),
                    "counter decreased: {l}"
                );
            }
            // Few significant digits: values are short decimals, not full-precision floats.
            for (_, v) in pts {
                let s = format!("{v}");
                assert!(s.len() <= 22, "{l}: {s}");
            }
            let n = l.matches("=\"").count();
            assert!((6..=12).contains(&n), "{l}");
        }
        assert!(
            constant * 10 > by_series.len(),
            "too few constant series: {constant}"
        );
        assert!(
            constant * 10 < by_series.len() * 8,
            "too many constant series: {constant}"
        );
    }

    #[test]
    fn churn_replaces_hosts_smoothly() {
        let (f, a) = run(opts(2000, Some(600_000), 30));
        assert_eq!(f.active_series(), 2000);
        // Every slot turns over about three times in 30 minutes.
        let created = f.series_created();
        assert!((2000 * 3..=2000 * 5).contains(&created), "{created}");
        // Exactly the active number of series in each round.
        let rounds = f.rounds() as usize;
        assert_eq!(a.len(), 2000 * rounds);
        let distinct: HashSet<&str> = a.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(distinct.len() as u64, created);
        // Smooth: no single round creates more than a small fraction of the series.
        let mut f = Fleet::new(opts(2000, Some(600_000), 30));
        let mut worst = 0;
        while {
            let mut n = 0;
            let more = f.next_round(|s| n += s.new_series as usize);
            if f.round > 1 {
                worst = worst.max(n);
            }
            more
        } {}
        assert!(worst < 2000 / 5, "{worst}");
    }
}
