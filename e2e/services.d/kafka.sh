# Apache Kafka 3.9, single node in KRaft mode, from Maven Central jars.
#   PLAINTEXT  127.0.0.1:19092
#   SASL_SSL   127.0.0.1:19094  (Event Hubs style: PLAIN, user $ConnectionString,
#                                password the connection string below)
#   SASL_PLAINTEXT 127.0.0.1:19095 (SCRAM-SHA-256/512; the tests add their users)
#   CONTROLLER 127.0.0.1:19093
#   FAULTS     127.0.0.1:19096 (PLAINTEXT, advertised as 127.0.0.1:19097: a
#              test's fault proxy listens on 19097 and forwards to 19096, so
#              every connection a client opens after the metadata request
#              goes through the proxy too)

KAFKA_VERSION=3.9.1
KAFKA_EH_CONNSTR='Endpoint=sb://localhost:19094/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Zmxvd2QtZTJlLWthZmthLWtleQ=='

kafka_libs() { echo "$FLOWD_CACHE/kafka-$KAFKA_VERSION/libs"; }

kafka_install() {
  local libs; libs=$(kafka_libs)
  [ -f "$libs/.complete" ] && return 0
  log "kafka: fetching $KAFKA_VERSION jars from Maven Central"
  mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$here/services.d/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

kafka_tls() {
  local dir=$FLOWD_STATE/kafka/tls
  [ -f "$dir/server.p12" ] && [ -f "$dir/ca.pem" ] && return 0
  mkdir -p "$dir"
  rm -f "$dir/server.p12" "$dir/ca.pem"
  keytool -genkeypair -alias localhost -keyalg RSA -keysize 2048 -validity 3650 \
    -dname "CN=localhost" -ext "SAN=dns:localhost,ip:127.0.0.1" -ext "BC:c=ca:true" \
    -keystore "$dir/server.p12" -storetype PKCS12 -storepass flowd-test -keypass flowd-test >/dev/null 2>&1
  keytool -exportcert -rfc -alias localhost -keystore "$dir/server.p12" \
    -storetype PKCS12 -storepass flowd-test -file "$dir/ca.pem" >/dev/null 2>&1
}

kafka_config() {
  local dir=$FLOWD_STATE/kafka
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:19093
listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,EH://127.0.0.1:19094,SCRAM://127.0.0.1:19095,FAULTS://127.0.0.1:19096
advertised.listeners=PLAINTEXT://127.0.0.1:19092,EH://127.0.0.1:19094,SCRAM://127.0.0.1:19095,FAULTS://127.0.0.1:19097
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EH:SASL_SSL,SCRAM:SASL_PLAINTEXT,FAULTS:PLAINTEXT
listener.name.eh.sasl.enabled.mechanisms=PLAIN
listener.name.eh.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_\$ConnectionString="$KAFKA_EH_CONNSTR";
listener.name.eh.ssl.keystore.location=$dir/tls/server.p12
listener.name.eh.ssl.keystore.type=PKCS12
listener.name.eh.ssl.keystore.password=flowd-test
listener.name.eh.ssl.key.password=flowd-test
listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.scram.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.scram.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=2
log.segment.bytes=268435456
message.max.bytes=8388608
num.network.threads=2
num.io.threads=4
PROPS
  cat >"$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
}

kafka_java() {
  java -Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$FLOWD_STATE/kafka/log4j.properties" \
    -cp "$(kafka_libs)/*" "$@"
}

kafka_up() {
  if port_open 19092 && port_open 19094 && port_open 19095 && port_open 19096; then return 0; fi
  # A broker started with an older configuration (fewer listeners): restart it.
  if port_open 19092; then kafka_down; fi
  kafka_install
  mkdir -p "$FLOWD_STATE/kafka/data"
  kafka_tls
  kafka_config
  if [ ! -f "$FLOWD_STATE/kafka/data/meta.properties" ]; then
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
      -t "$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$FLOWD_STATE/kafka/server.properties" >&2
  fi
  start_bg kafka java -Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$FLOWD_STATE/kafka/log4j.properties" \
    -cp "$(kafka_libs)/*" kafka.Kafka "$FLOWD_STATE/kafka/server.properties"
  wait_port 19092 120 && wait_port 19094 30 && wait_port 19095 30 && wait_port 19096 30
}

kafka_down() { stop_bg kafka; }

kafka_env() {
  echo "export FLOWD_TEST_KAFKA=127.0.0.1:19092"
  echo "export FLOWD_TEST_KAFKA_EH=127.0.0.1:19094"
  echo "export FLOWD_TEST_KAFKA_EH_CA=$FLOWD_STATE/kafka/tls/ca.pem"
  echo "export FLOWD_TEST_KAFKA_EH_CONNSTR='$KAFKA_EH_CONNSTR'"
  echo "export FLOWD_TEST_KAFKA_SCRAM=127.0.0.1:19095"
  # listener for a fault proxy: upstream 19096, the proxy must listen on 19097
  echo "export FLOWD_TEST_KAFKA_FAULTS=127.0.0.1:19096"
  echo "export FLOWD_TEST_KAFKA_FAULTS_PROXY=127.0.0.1:19097"
}
