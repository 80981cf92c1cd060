//! armadito backend plugin (filled in by its issue).
