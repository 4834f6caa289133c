"""The sweep file: ``spec`` reads it into ``config.Sweep`` (the one config object), ``cells`` expands
it into table cells (ids, seeds, the dry run's lines), ``layouts`` holds the tables' layouts and
``cost`` the device-time estimate. Imports nothing else of orchestrator."""
