"""coord in a container: the ZooKeeper images' environment contract (`env`), and the entrypoint that
applies it, takes a ZooKeeper data volume over and starts `coord serve` (`entrypoint`).
See docs/docker.md."""
