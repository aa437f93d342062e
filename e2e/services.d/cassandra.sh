# Apache Cassandra 5.0, single node on loopback, run straight from the jars on
# Maven Central (org.apache.cassandra:cassandra-all and its runtime
# dependencies, fetched once with `mvn dependency:copy-dependencies`).
#
#   CQL 19042, storage (gossip) 17000; data and logs under $FLOWD_STATE/cassandra.

CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}
CASSANDRA_CQL_PORT=19042
CASSANDRA_STORAGE_PORT=17000

cassandra_home() { echo "$FLOWD_CACHE/cassandra-$CASSANDRA_VERSION"; }

cassandra_install() {
  local home; home=$(cassandra_home)
  [ -f "$home/lib/.complete" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$home"
  cat >"$home/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>flowd.e2e</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  log "downloading Cassandra $CASSANDRA_VERSION jars from Maven Central"
  (cd "$home" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime) >&2
  ls "$home"/lib/cassandra-all-*.jar >/dev/null
  touch "$home/lib/.complete"
}

cassandra_config() {
  local dir=$1
  mkdir -p "$dir/conf" "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" "$dir/cdc_raw" "$dir/logs"
  cat >"$dir/conf/cassandra.yaml" <<EOF
cluster_name: flowd-e2e
num_tokens: 16
allocate_tokens_for_local_replication_factor: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$CASSANDRA_STORAGE_PORT"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_CQL_PORT
start_native_transport: true
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
auto_snapshot: false
EOF
  cat >"$dir/conf/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/logs/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
}

cassandra_up() {
  if port_open "$CASSANDRA_CQL_PORT"; then return 0; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  cassandra_install
  local home dir
  home=$(cassandra_home)
  dir="$FLOWD_STATE/cassandra"
  cassandra_config "$dir"
  local opens=(
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.math=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.net=ALL-UNNAMED
  )
  local jamm; jamm=$(ls "$home"/lib/jamm-*.jar | head -1)
  log "starting Cassandra $CASSANDRA_VERSION on 127.0.0.1:$CASSANDRA_CQL_PORT (logs: $dir/logs)"
  start_bg cassandra java -Xms1G -Xmx1G -Xss256k -XX:+UseG1GC -XX:+AlwaysPreTouch \
    -Djava.net.preferIPv4Stack=true \
    "${opens[@]}" \
    -javaagent:"$jamm" \
    -Dcassandra-foreground=yes \
    -Dcassandra.config="file://$dir/conf/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" \
    -Dcassandra.logdir="$dir/logs" \
    -Dlogback.configurationFile="$dir/conf/logback.xml" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.jmx.local.port=17199 \
    -cp "$home/lib/*" org.apache.cassandra.service.CassandraDaemon
  if ! wait_port "$CASSANDRA_CQL_PORT" 120; then
    tail -n 40 "$FLOWD_STATE/cassandra.log" "$dir/logs/system.log" >&2 2>/dev/null || true
    return 1
  fi
}

cassandra_down() { stop_bg cassandra; }

cassandra_env() { echo "export FLOWD_TEST_CASSANDRA=127.0.0.1:$CASSANDRA_CQL_PORT"; }
