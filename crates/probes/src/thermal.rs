//! CPU package temperature in °C (SPEC §2 `temperature`): the hottest CPU package sensor
//! under a sysfs root.
//!
//! Where it looks, in order:
//! 1. hwmon (`<sysfs>/class/hwmon/hwmon*`): `coretemp` "Package id N" (every package), and
//!    per `k10temp`/`zenpower` device `Tdie`, else `Tctl`.
//! 2. Only when no hwmon package sensor gives a value: CPU thermal zones
//!    (`<sysfs>/class/thermal/thermal_zone*`) such as `x86_pkg_temp`, `cpu-thermal` or
//!    Jetson's `CPU-therm` (see [`is_cpu_zone`]).
//!
//! Not sensors: a reading of −256 °C (a Jetson zone that is offline or power-gated),
//! `PMIC-Die` (fixed at 100 °C on Jetson), `thermal-fan-est` (an estimate), NaN and
//! anything outside [`PLAUSIBLE_CELSIUS`].
//!
//! Owns: finding the sensor files once, caching their paths, reading them (read → parse →
//! check → pick the hottest). Rediscovers when nothing was found yet (a sensor can appear
//! after a module loads) or when a cached file stops reading (hwmon numbers change across
//! reboots and driver reloads, so none is ever hard-coded). Does not own: GPU temperatures
//! (the `gpu` crate, which reuses [`zones`] and [`read_celsius`]), when reads happen.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, Probe};

#[cfg(test)]
mod tests;

/// Readings outside this range (°C) are faults, not temperatures.
pub const PLAUSIBLE_CELSIUS: RangeInclusive<f64> = -60.0..=150.0;

/// What a Jetson zone reads while its sensor is offline or power-gated (−256000 m°C).
const OFFLINE_CELSIUS: f64 = -256.0;

/// Thermal zones that are not temperature sensors: Jetson's `PMIC-Die` always reads
/// 100 °C, `thermal-fan-est` is a weighted estimate made for the fan governor.
const NOT_SENSORS: [&str; 2] = ["PMIC-Die", "thermal-fan-est"];

/// CPU zone types matched exactly; other ARM names are matched by [`is_cpu_zone`]'s rule.
/// `BCPU-therm`/`MCPU-therm` are the Jetson TX2's two CPU clusters.
const CPU_ZONES: [&str; 6] = [
    "x86_pkg_temp",
    "cpu-thermal",
    "cpu_thermal",
    "CPU-therm",
    "BCPU-therm",
    "MCPU-therm",
];

/// One thermal zone: `<sysfs>/class/thermal/thermal_zoneN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The zone's `type` file, trimmed: `CPU-therm`, `gpu-thermal`, `x86_pkg_temp`, ...
    pub kind: String,
    /// Its `temp` file (millidegrees Celsius); read it with [`read_celsius`].
    pub temp_path: PathBuf,
}

/// The thermal zones under `<sysfs>/class/thermal` that are sensors, in zone-number order
/// (`PMIC-Die` and `thermal-fan-est` left out). A zone whose `type` cannot be read is
/// skipped; a missing directory gives no zones.
pub fn zones(sysfs: &Path) -> Vec<Zone> {
    numbered_entries(&sysfs.join("class/thermal"), "thermal_zone")
        .into_iter()
        .filter_map(|dir| {
            let kind = std::fs::read_to_string(dir.join("type"))
                .ok()?
                .trim()
                .to_owned();
            let sensor = !kind.is_empty() && !NOT_SENSORS.contains(&kind.as_str());
            sensor.then(|| Zone {
                kind,
                temp_path: dir.join("temp"),
            })
        })
        .collect()
}

/// True for a zone type that measures the CPU: `x86_pkg_temp`, `cpu-thermal`,
/// `cpu_thermal`, `CPU-therm`, and any other name that starts with "cpu" and contains
/// "therm" whatever the case (`cpu0-thermal`, `cpu-big0-thermal`).
pub fn is_cpu_zone(kind: &str) -> bool {
    if NOT_SENSORS.contains(&kind) {
        return false;
    }
    let lower = kind.to_ascii_lowercase();
    CPU_ZONES.contains(&kind) || (lower.starts_with("cpu") && lower.contains("therm"))
}

/// Reads a millidegree file (hwmon `tempN_input`, a zone's `temp`) as °C, refusing what is
/// not a temperature (see [`check_celsius`]).
pub fn read_celsius(path: &Path) -> Result<f64, Error> {
    // Bytes that are not UTF-8 are a bad reading (a parse error naming them), not a file
    // that cannot be read: that would send the probe looking for its sensors every tick.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let celsius = parse_millidegrees(&String::from_utf8_lossy(&bytes))
        .map_err(|what| Error::parse(path, what))?;
    check_celsius(celsius).map_err(|why| Error::NotAvailable(format!("{}: {why}", path.display())))
}

/// Parses the content of a millidegree file: `"52000\n"` → 52.0 (°C).
pub fn parse_millidegrees(text: &str) -> Result<f64, String> {
    let number = text.trim();
    let millidegrees: f64 = number.parse().map_err(|_| {
        format!(
            "not a temperature in millidegrees: {}",
            crate::quoted(number)
        )
    })?;
    Ok(millidegrees / 1000.0)
}

/// `celsius` if it is a temperature: not NaN or infinite, not Jetson's offline −256 °C,
/// within [`PLAUSIBLE_CELSIUS`].
pub fn check_celsius(celsius: f64) -> Result<f64, String> {
    if !celsius.is_finite() {
        Err(format!("not a number: {celsius}"))
    } else if celsius == OFFLINE_CELSIUS {
        Err("sensor offline (reads -256 °C)".into())
    } else if !PLAUSIBLE_CELSIUS.contains(&celsius) {
        Err(format!("implausible reading: {celsius} °C"))
    } else {
        Ok(celsius)
    }
}

/// A file to read and what to call it in [`Thermal::source`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sensor {
    /// "coretemp Package id 0", "k10temp Tdie", "CPU-therm".
    name: String,
    path: PathBuf,
}

/// The CPU temperature probe. Finds its sensor files on the first read and keeps them;
/// later reads open only those files.
#[derive(Debug)]
pub struct Thermal {
    sysfs: PathBuf,
    /// The sensors of the source that gave the last value; empty until one does.
    sensors: Vec<Sensor>,
    /// Index into `sensors` of the one that gave the last value.
    last: Option<usize>,
    /// On a host with no sensor at all (most VMs), the search is repeated at most this
    /// often: a sensor can appear after boot, but searching every tick is wasted work.
    rescan_every: Duration,
    /// The last "no sensor" answer and when to search again.
    absent: Option<(Instant, String)>,
}

impl Thermal {
    /// A probe reading under `sysfs` (`/sys` on a host). Looks at nothing yet.
    pub fn new(sysfs: &Path) -> Self {
        Self {
            sysfs: sysfs.to_owned(),
            sensors: Vec::new(),
            last: None,
            rescan_every: Duration::from_secs(60),
            absent: None,
        }
    }

    /// How often to search again while the host shows no sensor (default 60 s).
    pub fn rescan_every(mut self, every: Duration) -> Self {
        self.rescan_every = every;
        self
    }

    /// The sensor that gave the last value ("coretemp Package id 1", "CPU-therm"), or
    /// `None` when the last read failed or none happened yet.
    pub fn source(&self) -> Option<&str> {
        self.last
            .and_then(|i| self.sensors.get(i))
            .map(|s| s.name.as_str())
    }

    /// Searches sysfs again: hwmon package sensors first, then CPU thermal zones.
    fn rediscover(&mut self) -> Result<f64, Error> {
        self.sensors.clear();
        self.last = None;
        let mut reasons = Vec::new();
        // Zones are listed only when hwmon gives no value.
        let sources: [fn(&Path) -> Vec<Sensor>; 2] = [hwmon_sensors, zone_sensors];
        for discover in sources {
            let sensors = discover(&self.sysfs);
            if sensors.is_empty() {
                continue;
            }
            let readings = read_all(&sensors);
            if let Some((i, celsius)) = hottest(&readings) {
                self.sensors = sensors;
                self.last = Some(i);
                return Ok(celsius);
            }
            for (sensor, reading) in sensors.iter().zip(readings) {
                if let Err(e) = reading {
                    reasons.push(format!("{}: {}", sensor.name, crate::Unavailable::from(e)));
                }
            }
        }
        if reasons.is_empty() {
            // Many VMs and containers have no sensor at all: not a fault of the service.
            Err(Error::Absent(format!(
                "no CPU temperature sensor under {} or {}",
                self.sysfs.join("class/hwmon").display(),
                self.sysfs.join("class/thermal").display()
            )))
        } else {
            Err(Error::NotAvailable(format!(
                "no valid CPU temperature: {}",
                reasons.join("; ")
            )))
        }
    }
}

impl Probe for Thermal {
    type Output = f64;

    fn name(&self) -> &'static str {
        "thermal"
    }

    fn read(&mut self) -> Result<f64, Error> {
        if let Some((until, why)) = &self.absent
            && Instant::now() < *until
        {
            return Err(Error::Absent(why.clone()));
        }
        if !self.sensors.is_empty() {
            let readings = read_all(&self.sensors);
            // A file that no longer reads means the sensor moved or went: look again.
            // Bad values from files that do read are skipped while another one is valid.
            let vanished = readings.iter().any(|r| matches!(r, Err(Error::Io { .. })));
            if !vanished && let Some((i, celsius)) = hottest(&readings) {
                self.last = Some(i);
                return Ok(celsius);
            }
        }
        let result = self.rediscover();
        self.absent = match &result {
            Err(Error::Absent(why)) => Some((Instant::now() + self.rescan_every, why.clone())),
            _ => None,
        };
        result
    }
}

fn read_all(sensors: &[Sensor]) -> Vec<Result<f64, Error>> {
    sensors.iter().map(|s| read_celsius(&s.path)).collect()
}

/// The index and value of the hottest valid reading, or `None` when none is valid.
fn hottest(readings: &[Result<f64, Error>]) -> Option<(usize, f64)> {
    readings
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|&c| (i, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The CPU package inputs of every hwmon chip we know (`coretemp`, `k10temp`, `zenpower`).
fn hwmon_sensors(sysfs: &Path) -> Vec<Sensor> {
    let mut sensors = Vec::new();
    for dir in numbered_entries(&sysfs.join("class/hwmon"), "hwmon") {
        // Kernels before 3.15 or so kept `name` and the attributes under `device/`.
        let Some((base, chip)) = [dir.clone(), dir.join("device")]
            .into_iter()
            .find_map(|base| {
                let name = std::fs::read_to_string(base.join("name")).ok()?;
                Some((base, name.trim().to_owned()))
            })
        else {
            continue;
        };
        if !matches!(chip.as_str(), "coretemp" | "k10temp" | "zenpower") {
            continue;
        }
        let labels = numbered_labels(&base, "temp", "_label");
        for (n, label) in package_labels(&chip, &labels) {
            sensors.push(Sensor {
                name: format!("{chip} {label}"),
                path: base.join(format!("temp{n}_input")),
            });
        }
    }
    sensors
}

/// The files `<prefix><N><suffix>` of `dir` (hwmon's `temp3_label`, INA3221's `in1_label`
/// or `rail_name_0`), as (N, content trimmed), in N order. Shared with the GPU crate.
pub fn numbered_labels(dir: &Path, prefix: &str, suffix: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut labels: Vec<(u32, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let n = entry_number(entry.file_name().to_str()?, prefix, suffix)?;
            let label = std::fs::read_to_string(entry.path()).ok()?;
            Some((n, label.trim().to_owned()))
        })
        .collect();
    labels.sort();
    labels
}

/// Which of a chip's temperature labels are CPU package sensors: every `coretemp`
/// "Package id N" (not "Core N"); for `k10temp` and `zenpower`, `Tdie` (the real die
/// temperature) when present, else `Tctl` (the fan-control value, offset by up to +27 °C on
/// some Zen 1 parts, the same as Tdie on the rest).
fn package_labels<'a>(chip: &str, labels: &'a [(u32, String)]) -> Vec<(u32, &'a str)> {
    let with = |wanted: &str| {
        labels
            .iter()
            .find(|(_, l)| l == wanted)
            .map(|(n, l)| (*n, l.as_str()))
    };
    match chip {
        "coretemp" => labels
            .iter()
            .filter(|(_, l)| l.starts_with("Package id"))
            .map(|(n, l)| (*n, l.as_str()))
            .collect(),
        "k10temp" | "zenpower" => with("Tdie").or_else(|| with("Tctl")).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The CPU thermal zones, as sensors.
fn zone_sensors(sysfs: &Path) -> Vec<Sensor> {
    zones(sysfs)
        .into_iter()
        .filter(|z| is_cpu_zone(&z.kind))
        .map(|z| Sensor {
            name: z.kind,
            path: z.temp_path,
        })
        .collect()
}

/// The entries `<prefix><number>` of `dir` (dirs or, in real sysfs, symlinks to them), in
/// number order (`hwmon10` after `hwmon9`). A missing or unreadable `dir` has none. Shared
/// with the GPU crate, which finds INA3221 rails the same way.
pub fn numbered_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut numbered: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let n = entry_number(entry.file_name().to_str()?, prefix, "")?;
            Some((n, entry.path()))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, path)| path).collect()
}

/// N of a sysfs name `<prefix><N><suffix>` (`hwmon3`, `temp2_label`, `rail_name_0`), written
/// the way the kernel writes it: decimal digits, no sign, no leading zero. So N names
/// exactly this file back (`temp{N}_input` is its sibling), and `temp+1_label` or
/// `temp01_label` are not mistaken for `temp1_label`.
pub(crate) fn entry_number(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}
