//! CPU package temperature from hwmon and thermal zones (placeholder: being written).

use std::path::{Path, PathBuf};

use crate::{Error, Probe};

#[derive(Debug)]
pub struct Thermal {
    sysfs: PathBuf,
}

impl Thermal {
    pub fn new(sysfs: &Path) -> Self {
        Self { sysfs: sysfs.to_owned() }
    }
}

impl Probe for Thermal {
    type Output = f64;

    fn name(&self) -> &'static str {
        "thermal"
    }

    fn read(&mut self) -> Result<f64, Error> {
        Err(Error::NotAvailable(format!("no CPU temperature sensor under {}", self.sysfs.display())))
    }
}
