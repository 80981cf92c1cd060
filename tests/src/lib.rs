//! Test support: the GLPI plugin double.
