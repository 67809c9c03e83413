"""Calibration data: samples read from files, synthetic feature families, vision-tower features."""
