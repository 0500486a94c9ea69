//! Jetson (Tegra) integrated GPU from sysfs: utilisation, temperature, power and the facts
//! of the board, for Jetsons up to JetPack 6, where NVML does not see the GPU.
//!
//! Where it looks, under the [`probes::Roots`] given to [`Jetson::new`]:
//! - **Load**: the devfreq node of the integrated GPU, a `<sysfs>/class/devfreq/*` whose
//!   `device/of_node/name` is a Tegra GPU (`gm20b`, `gp10b`, `gv11b`, `ga10b`, `gb10b`) or
//!   contains "gpu" on a node whose `compatible` names an NVIDIA part (the Nano and
//!   JetPack 6 call the node `gpu@57000000`/`gpu@17000000`; a Mali GPU on a Rockchip board
//!   is called `gpu` too, and is not ours). Its `device/load` counts per mille. Then the
//!   older fixed paths `<sysfs>/devices/gpu.0/load` and `<sysfs>/devices/platform/gpu.0/load`.
//!   The list of names is jetson-stats' (`jtop/core/gpu.py`), plus `gb10b` and `gm20b`.
//! - **Temperature**: the first thermal zone ([`probes::thermal::zones`], which already
//!   leaves out `PMIC-Die` and `thermal-fan-est`) of type `GPU-therm` (Nano, TX2, Xavier)
//!   or `gpu-thermal` (Orin). A zone reading −256 °C is a power-gated GPU: no value and a
//!   note, not a fault.
//! - **Power**: INA3221 rails found by label, never by hwmon number (it changes across
//!   reboots): JetPack 5+ `<sysfs>/class/hwmon/hwmon*` named `ina3221` with `in<N>_label`,
//!   `in<N>_input` (mV) and `curr<N>_input` (mA); JetPack 4
//!   `<sysfs>/bus/i2c/drivers/ina3221x/*/iio:device*` with `rail_name_<N>` and
//!   `in_power<N>_input` (mW). Channels labelled `NC` and the "sum of shunt voltages"
//!   are skipped, as jetson-stats does (`jtop/core/power.py`).
//! - **Board**: the device-tree `model` and the L4T release in `<rootfs>/etc/nv_tegra_release`.
//!
//! Which rail is whose (a decision; the names are in `rail_role`):
//! - Board power ([`GpuSample::board_power_watts`]) is the input rail, `VDD_IN` or
//!   `POM_5V_IN`. AGX Orin has none (its rails are `VDD_GPU_SOC`, `VDD_CPU_CV`,
//!   `VIN_SYS_5V0`); there board power stays `None` rather than a sum of module rails that
//!   is not the board's input.
//! - GPU power ([`Device::power_watts`]) comes from a rail that feeds the GPU and no CPU
//!   core: `POM_5V_GPU` (Nano), `VDD_SYS_GPU` (TX2), `GPU` (AGX Xavier), `VDD_GPU`; else
//!   AGX Orin's `VDD_GPU_SOC`, reported with a note that it includes the SoC. The
//!   `VDD_CPU_GPU_CV` rail of Xavier NX and Orin NX/Nano also feeds the CPU cores, which
//!   alone can draw watts from it while the GPU idles: it is not reported as GPU power.
//!   The device's power stays `None` and a note gives the shared rail's reading.
//!
//! Cost: paths are found once and cached; later samples read only the cached files (load,
//! one zone, at most two rails). A cached file that stops reading is looked for again in
//! the same sample (hwmon renumbered, GPU node re-bound). What was not found is looked for
//! again on every sample, a few directory reads: the GPU's devfreq node can appear after
//! the service starts (the nvgpu driver loads late; jetson-stats issue #425).
//!
//! Does not own: deciding whether this backend runs (`select`, which also treats an NVML
//! device named "nvgpu" as a Jetson), Thor's `gpu-gpc-*` devfreq nodes (JetPack 7 has
//! NVML), threads and deadlines.

use std::path::{Path, PathBuf};

use probes::Roots;
use probes::thermal::{self, Zone};

use crate::{BackendKind, Device, GpuBackend, GpuSample, SystemInfo};

#[cfg(test)]
mod tests;

/// `device/of_node/name` of Tegra integrated GPUs: TX1/Nano (gm20b, whose node is usually
/// named `gpu`), TX2 (gp10b), Xavier (gv11b), Orin (ga10b), Thor (gb10b).
const TEGRA_GPUS: [&str; 5] = ["gm20b", "gp10b", "gv11b", "ga10b", "gb10b"];

/// Load files of kernels whose GPU has no devfreq node we recognise, under `<sysfs>`.
const FIXED_LOAD_PATHS: [&str; 2] = ["devices/gpu.0/load", "devices/platform/gpu.0/load"];

/// What a Jetson thermal zone reads while its sensor is power-gated (−256000 m°C), the
/// same rule as `probes::thermal`.
const OFFLINE_CELSIUS: f64 = -256.0;

const MEMORY_NOTE: &str = "memory: the integrated GPU shares system RAM with the CPU (see ram)";

/// The Jetson backend. Looks at nothing until the first [`GpuBackend::sample`].
#[derive(Debug)]
pub struct Jetson {
    sysfs: PathBuf,
    rootfs: PathBuf,
    load: Option<LoadSource>,
    zone: Option<Zone>,
    rails: Option<Rails>,
    /// Read on the first sample; the model and release do not change while running.
    system: Option<SystemInfo>,
}

impl Jetson {
    pub fn new(roots: &Roots) -> Self {
        Self {
            sysfs: roots.sysfs.clone(),
            rootfs: roots.rootfs.clone(),
            load: None,
            zone: None,
            rails: None,
            system: None,
        }
    }

    /// The GPU's load with the device's name, or `None` when no load file exists.
    fn read_load(&mut self) -> Option<(String, Result<f64, probes::Error>)> {
        for attempt in 0..2 {
            if self.load.is_none() {
                self.load = discover_load(&self.sysfs);
            }
            let source = self.load.as_ref()?;
            let reading = read_parsed(&source.path, parse_load);
            if attempt == 0 && vanished(&reading) {
                self.load = None;
                continue;
            }
            return Some((source.name.clone(), reading));
        }
        None
    }

    /// The GPU zone's temperature. When there is none, says why: a note when that is no
    /// fault (no GPU zone, a power-gated GPU reading −256 °C), a problem when it is.
    fn read_celsius(&mut self, notes: &mut Vec<String>, problems: &mut Vec<String>) -> Option<f64> {
        for attempt in 0..2 {
            if self.zone.is_none() {
                self.zone = thermal::zones(&self.sysfs)
                    .into_iter()
                    .find(|z| is_gpu_zone(&z.kind));
            }
            let Some(zone) = &self.zone else {
                notes.push(format!(
                    "temperature: no GPU thermal zone (GPU-therm, gpu-thermal) under {}",
                    self.sysfs.join("class/thermal").display()
                ));
                return None;
            };
            let reading = read_parsed(&zone.temp_path, gpu_celsius);
            if attempt == 0 && vanished(&reading) {
                self.zone = None;
                continue;
            }
            return match reading {
                Ok(Some(celsius)) => Some(celsius),
                Ok(None) => {
                    notes.push(format!(
                        "temperature: {} reads -256 °C: powered off",
                        zone.kind
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("temperature: {}", describe(e)));
                    None
                }
            };
        }
        None
    }

    /// Board and GPU power, watts.
    fn read_power(
        &mut self,
        notes: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) -> (Option<f64>, Option<f64>) {
        let mut readings = None;
        for attempt in 0..2 {
            if self.rails.is_none() {
                self.rails = Rails::pick(discover_rails(&self.sysfs));
            }
            let Some(rails) = &self.rails else { break };
            let read = rails.read();
            if attempt == 0 && read.vanished() {
                self.rails = None;
                continue;
            }
            readings = Some(read);
            break;
        }
        let (Some(rails), Some(read)) = (&self.rails, readings) else {
            notes.push(format!(
                "power: no INA3221 power monitor under {} or {}",
                self.sysfs.join("class/hwmon").display(),
                self.sysfs.join("bus/i2c/drivers/ina3221x").display()
            ));
            return (None, None);
        };

        let board = match (&rails.board, read.board) {
            (Some(_), Some(Ok(watts))) => Some(watts),
            (Some(rail), Some(Err(e))) => {
                problems.push(format!("power: {}: {}", rail.label, describe(e)));
                None
            }
            _ => {
                notes.push(format!(
                    "power: no board input rail (VDD_IN, POM_5V_IN) among the INA3221 rails {}",
                    rails.labels.join(", ")
                ));
                None
            }
        };

        let gpu = match (&rails.gpu, read.gpu) {
            (Some((rail, _)), Some(Err(e))) if rails.gpu_is_reported() => {
                problems.push(format!("power: {}: {}", rail.label, describe(e)));
                None
            }
            (Some((rail, GpuRail::WithSoc)), Some(Ok(watts))) => {
                notes.push(format!(
                    "power: {} feeds the GPU and the SoC together; this board has no GPU-only rail",
                    rail.label
                ));
                Some(watts)
            }
            (Some((_, GpuRail::Dedicated)), Some(Ok(watts))) => Some(watts),
            (Some((rail, GpuRail::Shared)), reading) => {
                let figure = match reading {
                    Some(Ok(watts)) => format!(" ({watts:.2} W)"),
                    _ => String::new(),
                };
                notes.push(format!(
                    "power: no GPU-only rail; {}{figure} feeds the CPU, GPU and CV engines \
                     together, so it is not reported as GPU power",
                    rail.label
                ));
                None
            }
            _ => {
                notes.push(format!(
                    "power: no GPU rail among the INA3221 rails {}",
                    rails.labels.join(", ")
                ));
                None
            }
        };
        (board, gpu)
    }

    fn missing_load_reason(&self) -> String {
        let [gpu0, platform_gpu0] = FIXED_LOAD_PATHS.map(|p| self.sysfs.join(p));
        format!(
            "no Jetson GPU load file: no integrated GPU with a device/load under {} \
             (of_node name {}, or an NVIDIA \"gpu\" node), and no {} or {}",
            self.sysfs.join("class/devfreq").display(),
            TEGRA_GPUS.join(", "),
            gpu0.display(),
            platform_gpu0.display()
        )
    }
}

impl GpuBackend for Jetson {
    fn kind(&self) -> BackendKind {
        BackendKind::Jetson
    }

    fn sample(&mut self) -> GpuSample {
        let system = self
            .system
            .get_or_insert_with(|| system_info(&self.sysfs, &self.rootfs))
            .clone();
        let Some((name, load)) = self.read_load() else {
            let mut sample =
                GpuSample::unavailable(BackendKind::Jetson, self.missing_load_reason());
            sample.system = system;
            return sample;
        };

        let mut notes = vec![MEMORY_NOTE.to_owned()];
        let mut problems = Vec::new();
        let utilization_percent = match load {
            Ok(percent) => Some(percent),
            Err(e) => {
                problems.push(format!("load: {}", describe(e)));
                None
            }
        };
        let celsius = self.read_celsius(&mut notes, &mut problems);
        let (board_power_watts, power_watts) = self.read_power(&mut notes, &mut problems);

        GpuSample {
            backend: BackendKind::Jetson,
            reason: None,
            devices: vec![Device {
                index: 0,
                name: Some(name),
                utilization_percent,
                celsius,
                power_watts,
                error: (!problems.is_empty()).then(|| problems.join("; ")),
                notes,
                ..Device::default()
            }],
            system,
            board_power_watts,
        }
    }
}

/// True on a Tegra board: an integrated GPU devfreq node (see the module docs),
/// `<rootfs>/etc/nv_tegra_release`, or "nvidia,tegra" in the device tree's `compatible`.
pub fn detect(roots: &Roots) -> bool {
    !devfreq_gpus(&roots.sysfs).is_empty()
        || roots
            .host_path(Path::new("/etc/nv_tegra_release"))
            .is_file()
        || read_dt_strings(&roots.sysfs.join("firmware/devicetree/base/compatible"))
            .iter()
            .any(|c| c.contains("nvidia,tegra"))
}

// ---- Discovery -----------------------------------------------------------------------

/// The GPU's load file and the device's name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LoadSource {
    name: String,
    path: PathBuf,
}

/// A devfreq node of a Tegra integrated GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GpuNode {
    /// `<sysfs>/class/devfreq/<node>` (in real sysfs a symlink).
    dir: PathBuf,
    /// The chip: "ga10b", "gm20b", ... (see [`chip_name`]).
    name: String,
}

/// The Tegra GPU nodes under `<sysfs>/class/devfreq`, in name order.
fn devfreq_gpus(sysfs: &Path) -> Vec<GpuNode> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/devfreq")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.into_iter()
        .filter_map(|dir| {
            let of_node = dir.join("device/of_node");
            let of_name = read_dt_strings(&of_node.join("name")).into_iter().next()?;
            let compatible = read_dt_strings(&of_node.join("compatible"));
            is_tegra_gpu_node(&of_name, &compatible).then(|| GpuNode {
                name: chip_name(&of_name, &compatible),
                dir,
            })
        })
        .collect()
}

/// The first GPU devfreq node with a `device/load`, else the first fixed path that exists.
fn discover_load(sysfs: &Path) -> Option<LoadSource> {
    let from_devfreq = devfreq_gpus(sysfs).into_iter().find_map(|node| {
        let path = node.dir.join("device/load");
        path.is_file().then_some(LoadSource {
            name: node.name,
            path,
        })
    });
    from_devfreq.or_else(|| {
        FIXED_LOAD_PATHS
            .iter()
            .map(|p| sysfs.join(p))
            .find(|p| p.is_file())
            .map(|path| LoadSource {
                name: "gpu.0".to_owned(),
                path,
            })
    })
}

/// One INA3221 channel and where its reading is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rail {
    label: String,
    meter: Meter,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Meter {
    /// hwmon (JetPack 5+): bus voltage and current; watts = mV * mA / 1e6.
    VoltsAmps {
        millivolts: PathBuf,
        milliamps: PathBuf,
    },
    /// iio (JetPack 4): power in mW.
    Power { milliwatts: PathBuf },
}

/// What a rail says about the GPU (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GpuRail {
    /// The GPU alone.
    Dedicated,
    /// The GPU and the SoC (memory controller, engines), no CPU cores.
    WithSoc,
    /// The GPU with the CPU cores and CV engines: not a GPU measure.
    Shared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The board's input.
    Board,
    Gpu(GpuRail),
}

/// What a rail label measures, by the names NVIDIA gives them on each board.
fn rail_role(label: &str) -> Option<Role> {
    let is = |names: &[&str]| names.iter().any(|n| label.eq_ignore_ascii_case(n));
    if is(&["VDD_IN", "POM_5V_IN"]) {
        Some(Role::Board)
    } else if is(&["POM_5V_GPU", "VDD_SYS_GPU", "GPU", "VDD_GPU"]) {
        Some(Role::Gpu(GpuRail::Dedicated))
    } else if is(&["VDD_GPU_SOC"]) {
        Some(Role::Gpu(GpuRail::WithSoc))
    } else if is(&["VDD_CPU_GPU_CV"]) {
        Some(Role::Gpu(GpuRail::Shared))
    } else {
        None
    }
}

/// The rails this backend reads, picked from all the board has.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rails {
    board: Option<Rail>,
    /// The best GPU rail: dedicated, else with the SoC, else shared.
    gpu: Option<(Rail, GpuRail)>,
    /// Every rail label found, for the notes.
    labels: Vec<String>,
}

impl Rails {
    /// `None` when the board has no rail at all (look again later).
    fn pick(all: Vec<Rail>) -> Option<Self> {
        if all.is_empty() {
            return None;
        }
        let labels = all.iter().map(|r| r.label.clone()).collect();
        let board = all
            .iter()
            .find(|r| rail_role(&r.label) == Some(Role::Board))
            .cloned();
        let gpu = all
            .into_iter()
            .filter_map(|r| match rail_role(&r.label) {
                Some(Role::Gpu(kind)) => Some((r, kind)),
                _ => None,
            })
            .min_by_key(|(_, kind)| *kind);
        Some(Self { board, gpu, labels })
    }

    fn gpu_is_reported(&self) -> bool {
        matches!(self.gpu, Some((_, GpuRail::Dedicated | GpuRail::WithSoc)))
    }

    fn read(&self) -> RailReadings {
        RailReadings {
            board: self.board.as_ref().map(|r| read_watts(&r.meter)),
            gpu: self.gpu.as_ref().map(|(r, _)| read_watts(&r.meter)),
        }
    }
}

struct RailReadings {
    board: Option<Result<f64, probes::Error>>,
    gpu: Option<Result<f64, probes::Error>>,
}

impl RailReadings {
    fn vanished(&self) -> bool {
        [&self.board, &self.gpu].into_iter().flatten().any(vanished)
    }
}

/// Every labelled INA3221 rail: hwmon chips (JetPack 5+) in hwmon order, then iio devices
/// (JetPack 4).
fn discover_rails(sysfs: &Path) -> Vec<Rail> {
    let mut rails = Vec::new();
    for dir in probes::thermal::numbered_entries(&sysfs.join("class/hwmon"), "hwmon") {
        let is_ina3221 =
            std::fs::read_to_string(dir.join("name")).is_ok_and(|name| name.trim() == "ina3221");
        if !is_ina3221 {
            continue;
        }
        for (n, label) in probes::thermal::numbered_labels(&dir, "in", "_label") {
            let millivolts = dir.join(format!("in{n}_input"));
            let milliamps = dir.join(format!("curr{n}_input"));
            if is_rail_label(&label) && millivolts.is_file() && milliamps.is_file() {
                rails.push(Rail {
                    label,
                    meter: Meter::VoltsAmps {
                        millivolts,
                        milliamps,
                    },
                });
            }
        }
    }
    for device in sorted_entries(&sysfs.join("bus/i2c/drivers/ina3221x")) {
        for iio in sorted_entries(&device) {
            let is_iio = iio
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("iio:device"));
            if !is_iio {
                continue;
            }
            for (n, label) in probes::thermal::numbered_labels(&iio, "rail_name_", "") {
                let milliwatts = iio.join(format!("in_power{n}_input"));
                if is_rail_label(&label) && milliwatts.is_file() {
                    rails.push(Rail {
                        label,
                        meter: Meter::Power { milliwatts },
                    });
                }
            }
        }
    }
    rails
}

/// Not a rail: unconnected channels ("NC") and the chip's "sum of shunt voltages".
fn is_rail_label(label: &str) -> bool {
    !label.is_empty() && label != "NC" && !label.to_ascii_lowercase().contains("sum of shunt")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
}

fn system_info(sysfs: &Path, rootfs: &Path) -> SystemInfo {
    let model = std::fs::read(sysfs.join("firmware/devicetree/base/model"))
        .ok()
        .and_then(|bytes| parse_model(&String::from_utf8_lossy(&bytes)));
    // Bytes, not a String: a stray non-UTF-8 byte elsewhere in the file must not hide the
    // release line.
    let release = std::fs::read(rootfs.join("etc/nv_tegra_release"))
        .ok()
        .and_then(|bytes| parse_l4t_release(&String::from_utf8_lossy(&bytes)));
    SystemInfo {
        driver_version: None,
        board_model: model,
        l4t_release: release,
    }
}

// ---- Reading -------------------------------------------------------------------------

/// Reads and parses one sysfs value. Bytes that are not UTF-8 are a bad reading (a parse
/// error that shows them), not a file that cannot be read: that would count as vanished
/// and send discovery looking again on every sample.
fn read_parsed<T>(path: &Path, parse: fn(&str) -> Result<T, String>) -> Result<T, probes::Error> {
    let bytes = std::fs::read(path).map_err(|source| probes::Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&String::from_utf8_lossy(&bytes)).map_err(|what| probes::Error::Parse {
        path: path.to_owned(),
        what,
    })
}

fn read_watts(meter: &Meter) -> Result<f64, probes::Error> {
    match meter {
        Meter::VoltsAmps {
            millivolts,
            milliamps,
        } => {
            let mv = read_parsed(millivolts, parse_integer)?;
            let ma = read_parsed(milliamps, parse_integer)?;
            Ok(watts_from_mv_ma(mv, ma))
        }
        Meter::Power { milliwatts } => read_parsed(milliwatts, parse_integer).map(watts_from_mw),
    }
}

/// The file could not be read at all: the cached path is stale, look again.
fn vanished<T>(reading: &Result<T, probes::Error>) -> bool {
    matches!(reading, Err(probes::Error::Io { .. }))
}

/// The error with its causes, as `/health` shows them.
fn describe(e: probes::Error) -> String {
    probes::Unavailable::from(e).to_string()
}

/// A device-tree property file: NUL-separated strings (`model` has one, `compatible` a
/// list). Empty when the file is missing.
fn read_dt_strings(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|bytes| parse_dt_strings(&String::from_utf8_lossy(&bytes)))
        .unwrap_or_default()
}

// ---- Pure parsing and computing ------------------------------------------------------

/// `load` counts per mille: `"523\n"` → 52.3 (%). jetson-stats: `float(load) / 10`.
fn parse_load(text: &str) -> Result<f64, String> {
    let number = text.trim();
    let out_of_range = || format!("load out of range (0-1000 per mille): {}", quoted(number));
    let per_mille: u64 = number
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow => out_of_range(),
            _ => format!("not a load in per mille: {}", quoted(number)),
        })?;
    match u16::try_from(per_mille) {
        Ok(n) if n <= 1000 => Ok(f64::from(n) / 10.0),
        _ => Err(out_of_range()),
    }
}

/// A GPU zone's content: `Ok(Some(°C))`, `Ok(None)` for Jetson's offline −256 °C, or why
/// it is not a temperature ([`thermal::check_celsius`]).
fn gpu_celsius(text: &str) -> Result<Option<f64>, String> {
    let celsius = thermal::parse_millidegrees(text)?;
    if celsius == OFFLINE_CELSIUS {
        return Ok(None);
    }
    thermal::check_celsius(celsius).map(Some)
}

/// `GPU-therm` (Nano, TX1, TX2, Xavier) and `gpu-thermal` (Orin): a name that starts with
/// "gpu" and contains "therm", whatever the case.
fn is_gpu_zone(kind: &str) -> bool {
    let lower = kind.to_ascii_lowercase();
    lower.starts_with("gpu") && lower.contains("therm")
}

/// An integer reading (`"5056\n"`, `"-8"`), as f64 for the arithmetic that follows.
fn parse_integer(text: &str) -> Result<f64, String> {
    let number = text.trim();
    number
        .parse::<i64>()
        .map(|n| n as f64)
        .map_err(|_| format!("not an integer: {}", quoted(number)))
}

/// `text` quoted as `{:?}` does, cut after 64 characters (with its length) when longer: an
/// error names the bad reading without echoing a page of it.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(64) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// INA3221 over hwmon: bus voltage (mV) times current (mA), in watts.
fn watts_from_mv_ma(millivolts: f64, milliamps: f64) -> f64 {
    millivolts * milliamps / 1e6
}

fn watts_from_mw(milliwatts: f64) -> f64 {
    milliwatts / 1000.0
}

/// The strings of a device-tree property, without the NULs that end each one.
fn parse_dt_strings(text: &str) -> Vec<String> {
    text.split('\0')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The device-tree model, `"NVIDIA Jetson AGX Orin Developer Kit\0"` → the text; `None`
/// when empty.
fn parse_model(text: &str) -> Option<String> {
    parse_dt_strings(text).into_iter().next()
}

/// The first line of `/etc/nv_tegra_release`,
/// `# R36 (release), REVISION: 4.3, GCID: 38968081, ...` → `"36.4.3"`.
fn parse_l4t_release(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("# R"))?;
    let major = line
        .strip_prefix("# R")?
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .filter(|m| !m.is_empty())?;
    let revision = line.split_once("REVISION:")?.1.split(',').next()?.trim();
    let valid = !revision.is_empty()
        && revision
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| format!("{major}.{revision}"))
}

/// A devfreq node is the Tegra GPU when its device-tree node is named for a Tegra GPU, or
/// contains "gpu" and is an NVIDIA part (other vendors' GPUs are called `gpu` too).
fn is_tegra_gpu_node(of_name: &str, compatible: &[String]) -> bool {
    TEGRA_GPUS.contains(&of_name)
        || (of_name.contains("gpu") && compatible.iter().any(|c| c.starts_with("nvidia,")))
}

/// The chip's name: the node's own name when it is one (`ga10b`), else the first
/// `compatible` entry naming one (`nvidia,tegra210-gm20b` → `gm20b`, `nvidia,ga10b` →
/// `ga10b`), else the node name (`gpu`).
fn chip_name(of_name: &str, compatible: &[String]) -> String {
    if TEGRA_GPUS.contains(&of_name) {
        return of_name.to_owned();
    }
    compatible
        .iter()
        .filter_map(|c| c.strip_prefix("nvidia,"))
        .map(|part| match part.split_once('-') {
            Some((soc, chip)) if soc.starts_with("tegra") => chip,
            _ => part,
        })
        .find(|chip| TEGRA_GPUS.contains(chip))
        .unwrap_or(of_name)
        .to_owned()
}
