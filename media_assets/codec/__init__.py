"""Codec work: identify, probe, check, decode, render and transcode one file, in isolated
worker processes. Never imports dagster."""
