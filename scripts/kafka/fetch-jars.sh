#!/usr/bin/env bash
# Resolve the Apache Kafka broker (KRaft) and its runtime dependencies from Maven
# Central into .cache/kafka-jars, using scripts/kafka/pom.xml. Idempotent: does nothing
# when the cache already holds the jars for the current pom.xml (marker file .complete
# holding the pom's sha256). Safe to run concurrently (flock).
#
#   scripts/kafka/fetch-jars.sh            # -> <repo>/.cache/kafka-jars
#   PULSE_KAFKA_JARS_DIR=/x scripts/kafka/fetch-jars.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
pom="$here/pom.xml"
dest="${PULSE_KAFKA_JARS_DIR:-$root/.cache/kafka-jars}"
dest="${dest%/}"
marker="$dest/.complete"
stamp="$(sha256sum "$pom" | cut -d' ' -f1)"

up_to_date() { [[ -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; }

if up_to_date; then
  echo "kafka jars: up to date in $dest"
  exit 0
fi

command -v mvn >/dev/null || { echo "kafka jars: mvn not found on PATH" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
if up_to_date; then  # another process finished while we waited for the lock
  echo "kafka jars: up to date in $dest"
  exit 0
fi

tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "kafka jars: resolving $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom") from Maven Central into $dest"
if ! mvn -B -ntp -f "$pom" dependency:copy-dependencies \
  -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1; then
  tail -n 40 "$tmp.mvn.log" >&2
  echo "kafka jars: mvn failed (full log: $tmp.mvn.log)" >&2
  exit 1
fi
rm -f "$tmp.mvn.log"
count="$(find "$tmp" -maxdepth 1 -name '*.jar' | wc -l)"
if [[ "$count" -lt 10 ]] || ! compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null; then
  echo "kafka jars: resolution produced only $count jars, giving up" >&2
  exit 1
fi
echo "$stamp" >"$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "kafka jars: $count jars in $dest"
