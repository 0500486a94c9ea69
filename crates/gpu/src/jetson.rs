//! Jetson (Tegra) GPUs from sysfs (placeholder: being written).
