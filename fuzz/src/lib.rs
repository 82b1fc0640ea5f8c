//! Support for the fuzz targets: the structure-aware program generator.

pub mod generate;
