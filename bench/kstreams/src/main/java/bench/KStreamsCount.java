package bench;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.Conversions;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The stateful count of tests/benches/runtime.rs in Kafka Streams, for `make bench`: Avro
 * InventoryMovements in Confluent wire format (schemas from the registry), a persistent
 * (RocksDB, changelogged, cached) count per input key, and per input one output — the
 * movement with its quantity set to the count and a new event id, Avro again — under
 * `exactly_once_v2` (or `at_least_once`) committing every `--commit-ms`.
 *
 * <p>Time runs as in the Rust loops: from the first record processed to the moment the
 * group's committed offsets cover every input record. Prints one JSON line
 * {"records": N, "seconds": S, "records_per_s": R}.
 */
public final class KStreamsCount {
  private static final String STORE = "counts";

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = new java.util.HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    String broker = required(opts, "broker");
    String registry = required(opts, "registry").replaceAll("/$", "");
    String topic = required(opts, "topic");
    long records = Long.parseLong(required(opts, "records"));
    long commitMs = Long.parseLong(opts.getOrDefault("commit-ms", "200"));
    String guarantee = opts.getOrDefault("guarantee", StreamsConfig.EXACTLY_ONCE_V2);
    int partitions = Integer.parseInt(opts.getOrDefault("partitions", "4"));
    int warmups = Integer.parseInt(opts.getOrDefault("jvm-warmups", "1"));

    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker))) {
      Schemas schemas = new Schemas(registry);
      // The same JVM runs the whole count `warmups` times first (not measured), so the
      // measured run meets JIT-compiled code, as a long-running application would.
      for (int i = 0; i < warmups; i++) {
        once(admin, schemas, broker, topic, records, commitMs, guarantee, partitions);
      }
      double seconds =
          once(admin, schemas, broker, topic, records, commitMs, guarantee, partitions);
      System.out.printf(
          "{\"records\": %d, \"seconds\": %.3f, \"records_per_s\": %.1f}%n",
          records, seconds, records / seconds);
    }
  }

  /** One application (its own id, group and output topic) over the whole input: seconds. */
  private static double once(
      Admin admin,
      Schemas schemas,
      String broker,
      String topic,
      long records,
      long commitMs,
      String guarantee,
      int partitions)
      throws Exception {
    String app = "bench-kstreams-" + System.nanoTime();
    String output = app + "-out";
    Path stateDir = Files.createTempDirectory("kstreams-bench");
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    admin.createTopics(List.of(new NewTopic(output, partitions, (short) 1))).all().get();
    AtomicLong first = new AtomicLong();

    StreamsBuilder builder = new StreamsBuilder();
    builder.addStateStore(
        Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.Long())
            .withCachingEnabled());
    builder.stream(topic, Consumed.with(Serdes.String(), Serdes.ByteArray()))
        .process(() -> new Count(schemas, first), STORE)
        .to(output, Produced.with(Serdes.String(), Serdes.ByteArray()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
          .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    long deadline = System.nanoTime() + Duration.ofMinutes(10).toNanos();
    long done;
    try {
      while (true) {
        if (streams.state() == KafkaStreams.State.ERROR
            || streams.state() == KafkaStreams.State.NOT_RUNNING) {
          throw new IllegalStateException("kafka streams stopped: " + streams.state());
        }
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("not all offsets committed in 10 min");
        }
        long committed = 0;
        Map<TopicPartition, OffsetAndMetadata> offsets =
            admin.listConsumerGroupOffsets(app).partitionsToOffsetAndMetadata().get();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
          if (e.getKey().topic().equals(topic) && e.getValue() != null) {
            committed += e.getValue().offset();
          }
        }
        if (committed >= records) {
          done = System.nanoTime();
          break;
        }
        Thread.sleep(20);
      }
    } finally {
      streams.close(Duration.ofSeconds(30));
      streams.cleanUp();
    }
    return (done - first.get()) / 1e9;
  }

  private static String required(Map<String, String> opts, String name) {
    String value = opts.get(name);
    if (value == null) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return value;
  }

  /** One count per input key in the store; per input one output. */
  private static final class Count implements Processor<String, byte[], String, byte[]> {
    private final Schemas schemas;
    private final AtomicLong first;
    private final Conversions.DecimalConversion decimals = new Conversions.DecimalConversion();
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, Long> counts;

    Count(Schemas schemas, AtomicLong first) {
      this.schemas = schemas;
      this.first = first;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.counts = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> record) {
      if (first.get() == 0) {
        first.compareAndSet(0, System.nanoTime());
      }
      byte[] bytes = record.value();
      ByteBuffer header = ByteBuffer.wrap(bytes, 0, 5);
      if (header.get() != 0) {
        throw new IllegalArgumentException("not Confluent wire format");
      }
      Codec codec = schemas.get(header.getInt());
      try {
        decoder = DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, decoder);
        GenericRecord movement = codec.reader().read(null, decoder);
        // Per SKU within the partition, as the Rust count (inputs are keyed `sku|source`).
        String sku = movement.get("sku").toString();
        Long before = counts.get(sku);
        long count = (before == null ? 0 : before) + 1;
        counts.put(sku, count);
        GenericRecord envelope = (GenericRecord) movement.get("envelope");
        envelope.put("event_id", sku + "#" + count);
        Schema quantity = codec.quantity();
        movement.put(
            "quantity",
            decimals.toBytes(
                BigDecimal.valueOf(count).setScale(4), quantity, quantity.getLogicalType()));
        buffer.reset();
        buffer.write(bytes, 0, 5);
        encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
        codec.writer().write(movement, encoder);
        encoder.flush();
        context.forward(record.withValue(buffer.toByteArray()));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  /** Writer schemas by registry id, fetched once each, with a reader and a writer each. */
  private static final class Schemas {
    private final String registry;
    private final HttpClient http = HttpClient.newHttpClient();
    private final Map<Integer, Codec> byId = new ConcurrentHashMap<>();

    Schemas(String registry) {
      this.registry = registry;
    }

    Codec get(int id) {
      return byId.computeIfAbsent(id, this::fetch);
    }

    private Codec fetch(int id) {
      try {
        HttpRequest request =
            HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id)).build();
        String body = http.send(request, HttpResponse.BodyHandlers.ofString()).body();
        return new Codec(new Schema.Parser().parse(schemaField(body)));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }

    /** The string value of the answer's "schema" field, unescaped. */
    private static String schemaField(String body) {
      int key = body.indexOf("\"schema\"");
      int open = key < 0 ? -1 : body.indexOf('"', body.indexOf(':', key) + 1);
      if (open < 0) {
        throw new IllegalStateException("no schema in the registry's answer: " + body);
      }
      StringBuilder out = new StringBuilder();
      for (int i = open + 1; i < body.length(); i++) {
        char c = body.charAt(i);
        if (c == '"') {
          return out.toString();
        }
        if (c != '\\') {
          out.append(c);
          continue;
        }
        char next = body.charAt(++i);
        switch (next) {
          case 'n' -> out.append('\n');
          case 't' -> out.append('\t');
          case 'r' -> out.append('\r');
          case 'b' -> out.append('\b');
          case 'f' -> out.append('\f');
          case 'u' -> {
            out.append((char) Integer.parseInt(body.substring(i + 1, i + 5), 16));
            i += 4;
          }
          default -> out.append(next);
        }
      }
      throw new IllegalStateException("unterminated schema in the registry's answer");
    }
  }

  /**
   * A schema's reader and writer (made once: they cache their resolution) and its decimal
   * `quantity` field's schema, looked up once rather than per record.
   */
  private record Codec(
      GenericDatumReader<GenericRecord> reader,
      GenericDatumWriter<GenericRecord> writer,
      Schema quantity) {
    Codec(Schema schema) {
      this(
          new GenericDatumReader<>(schema),
          new GenericDatumWriter<>(schema),
          schema.getField("quantity").schema());
    }
  }
}
