"""Pops in the contact-mic audio: onset detection, features, artifact gate, localisation."""
