// Run by scripts/up as a single-file program (java -cp <kafka jars> Provision.java):
// upserts every principal's SCRAM-SHA-512 login and creates the ACLs of
// infra/kafka/acls.txt, logged in as the administrator, in one JVM.
//
//   Provision.java ACLS_FILE NAME=PASSWORD_VARIABLE...
//
// The passwords are read from the environment, never from the command line.
// Both calls are idempotent: an upsert replaces a login, an existing ACL stays.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class Provision {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        config.put("bootstrap.servers", env("OUTFLOW_KAFKA_BROKERS"));
        config.put("security.protocol", "SASL_PLAINTEXT");
        config.put("sasl.mechanism", "SCRAM-SHA-512");
        config.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + env("OUTFLOW_KAFKA_ADMIN_USER") + "\" password=\"" + env("OUTFLOW_KAFKA_ADMIN_PASSWORD") + "\";");
        config.put("default.api.timeout.ms", "30000");
        try (Admin admin = Admin.create(config)) {
            List<UserScramCredentialAlteration> logins = new ArrayList<>();
            for (int i = 1; i < args.length; i++) {
                String[] login = args[i].split("=", 2);
                logins.add(new UserScramCredentialUpsertion(login[0], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), env(login[1])));
            }
            admin.alterUserScramCredentials(logins).all().get();
            admin.createAcls(acls(Path.of(args[0]))).all().get();
        }
    }

    static List<AclBinding> acls(Path file) throws Exception {
        List<AclBinding> acls = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            line = line.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\\s+");
            ResourceType type = ResourceType.fromString(f[1].replace("-", "_").toUpperCase(Locale.ROOT));
            PatternType pattern = PatternType.fromString(f[3].toUpperCase(Locale.ROOT));
            if (f.length != 5 || type == ResourceType.UNKNOWN || pattern == PatternType.UNKNOWN) {
                throw new IllegalArgumentException(file + ": cannot read the line: " + line);
            }
            for (String operation : f[4].split(",")) {
                AclOperation op = AclOperation.fromString(operation);
                if (op == AclOperation.UNKNOWN) {
                    throw new IllegalArgumentException(file + ": unknown operation " + operation + " in: " + line);
                }
                acls.add(new AclBinding(new ResourcePattern(type, f[2], pattern),
                    new AccessControlEntry("User:" + f[0], "*", op, AclPermissionType.ALLOW)));
            }
        }
        return acls;
    }

    static String env(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set");
        }
        return value;
    }
}
