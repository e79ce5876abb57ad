"""Real Kafka 3.9 brokers (ZooKeeper mode) as local JVM processes, from the jars kafka/pom.xml names.

libs finds the jars set-up fetched from Maven Central; broker writes one broker's server.properties
and runs it; cluster runs N of them against an ensemble (coord or ZooKeeper) and reads their
registrations back from ZooKeeper; tools runs Kafka's own command-line tools from the same jars;
cli is `coord kafka up`.
"""
