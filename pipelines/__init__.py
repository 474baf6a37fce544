"""Pipelines shipped with skinimg (``skinimg run NAME``); installed as the data package ``skinimg.pipelines``."""
