#!/bin/bash
# kafka-server-start.sh of the rehearsal's Kafka image: the broker in the foreground with the
# distribution's defaults (1 GB heap, log4j2.yaml, EXTRA_ARGS "-name kafkaServer -loggc").
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "USAGE: $0 server.properties [--override property=value]*" >&2
  exit 1
fi
export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
# EXTRA_ARGS is a list of arguments: word splitting is meant
# shellcheck disable=SC2086
exec /opt/kafka/bin/kafka-run-class.sh ${EXTRA_ARGS--name kafkaServer -loggc} kafka.Kafka "$@"
