#!/bin/bash
# kafka-run-class.sh of the rehearsal's Kafka image: runs a class on the image's jars with the
# variables the distribution's script reads: KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
# KAFKA_GC_LOG_OPTS, KAFKA_JMX_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS, LOG_DIR, and the leading
# -name NAME and -loggc arguments (kafka-server-start.sh passes them from EXTRA_ARGS).
set -euo pipefail

base=/opt/kafka
usage="USAGE: $0 [-name servicename] [-loggc] classname [opts]"
daemon_name=""
gc_log=0
while [ $# -gt 0 ]; do
  case "$1" in
    -name)
      [ $# -ge 2 ] || { echo "$usage" >&2; exit 1; }
      daemon_name=$2
      shift 2
      ;;
    -loggc)
      gc_log=1
      shift
      ;;
    -daemon)
      echo "kafka-run-class.sh: -daemon is not supported here; a container runs in the foreground" >&2
      exit 1
      ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "$usage" >&2; exit 1; }

LOG_DIR="${LOG_DIR:-$base/logs}"
mkdir -p "$LOG_DIR"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256M}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base/config/tools-log4j2.yaml}"
gc_opts=()
if [ "$gc_log" = 1 ] && [ -n "$daemon_name" ]; then
  gc_opts=("-Xlog:gc*:file=$LOG_DIR/$daemon_name-gc.log:time,tags:filecount=10,filesize=100M")
fi

# the *_OPTS variables are lists of JVM options: word splitting is meant, as in the distribution
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS "${gc_opts[@]}" ${KAFKA_GC_LOG_OPTS:-} \
  ${KAFKA_JMX_OPTS:-} $KAFKA_LOG4J_OPTS "-Dkafka.logs.dir=$LOG_DIR" -cp "$base/libs/*" \
  ${KAFKA_OPTS:-} "$@"
