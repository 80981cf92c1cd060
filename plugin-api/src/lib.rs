//! Armadito backend plugin interface (filled in by the plugin issue).
