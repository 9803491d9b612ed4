package masking

import "testing"

// TestCommandArgPasswords: the passwords commands take as a flag's value or a positional
// argument (cmdargs.go), in the forms their manuals give, and what must stay: the flag alone
// (the command asks for the password), a user name alone, a reference, prose.
func TestCommandArgPasswords(t *testing.T) {
	tests := []detectorCase{
		{name: "ldap -w", in: "ldapsearch -x -H ldap://ldap.internal -D cn=admin,dc=example,dc=org -w S3cretPw9 -b dc=example,dc=org\nldapadd -D cn=admin -wS3cretPw9 -f users.ldif",
			want: "ldapsearch -x -H ldap://ldap.internal -D cn=admin,dc=example,dc=org -w <<P:S3cretPw9>> -b dc=example,dc=org\nldapadd -D cn=admin -w<<P:S3cretPw9>> -f users.ldif", dets: []string{"ldap-password"}},
		{name: "ldap prompts", in: "ldapsearch -x -W -D cn=admin -b dc=example,dc=org; ldapmodify -w \"$LDAP_PW\" -f x.ldif; ldapwhoami -y /run/secrets/ldap"},
		{name: "sqlcmd -P", in: "/opt/mssql-tools18/bin/sqlcmd -S localhost -U sa -P 'S3cret Pw9' -C -Q 'SELECT 1'",
			want: "/opt/mssql-tools18/bin/sqlcmd -S localhost -U sa -P '<<P:S3cret Pw9>>' -C -Q 'SELECT 1'", dets: []string{"sqlcmd-password"}},
		{name: "samba user%password", in: "smbclient //fs/share -U backup%S3cretPw9 -c ls\nsmbclient //fs/share --user='EXAMPLE\\backup%S3cret Pw9'\nsmbget -U u%S3cretPw9 smb://fs/share/f",
			want: "smbclient //fs/share -U backup%<<P:S3cretPw9>> -c ls\nsmbclient //fs/share --user='EXAMPLE\\backup%<<P:S3cret Pw9>>'\nsmbget -U u%<<P:S3cretPw9>> smb://fs/share/f", dets: []string{"samba-password"}},
		{name: "samba user alone", in: "smbclient //fs/share -U backup -c ls; smbclient -L fs -N"},
		{name: "influx -p", in: "influx setup --username admin -p S3cretPw9 --org example --bucket metrics --force",
			want: "influx setup --username admin -p <<P:S3cretPw9>> --org example --bucket metrics --force", dets: []string{"influx-password"}},
		{name: "zip -P", in: "zip -r -P S3cretPw9 backup.zip /data && unzip -P S3cretPw9 -o backup.zip",
			want: "zip -r -P <<P:S3cretPw9>> backup.zip /data && unzip -P <<P:S3cretPw9>> -o backup.zip", dets: []string{"zip-password"}},
		{name: "zip without a password", in: "zip -r backup.zip /data; gzip -P 4 f; unzip -l backup.zip; zip -e -P \"$ZIP_PW\" f.zip f"},
		{name: "7z -p", in: "7z a -t7z -mhe=on -pS3cretPw9 backup.7z /data\n7za x -p'S3cret Pw9' backup.7z",
			want: "7z a -t7z -mhe=on -p<<P:S3cretPw9>> backup.7z /data\n7za x -p'<<P:S3cret Pw9>>' backup.7z", dets: []string{"7zip-password"}},
		{name: "7z asks", in: "7z x -p backup.7z; 7z a -p -mhe=on backup.7z /data"},
		{name: "cqlsh -p", in: "cqlsh -u cassandra -p S3cretPw9 cassandra.internal 9042 -e 'DESCRIBE KEYSPACES'",
			want: "cqlsh -u cassandra -p <<P:S3cretPw9>> cassandra.internal 9042 -e 'DESCRIBE KEYSPACES'", dets: []string{"cqlsh-password"}},
		{name: "lftp -u", in: "lftp -u backup,S3cretPw9 -e 'mirror -R /data /backup; quit' ftp.internal",
			want: "lftp -u backup,<<P:S3cretPw9>> -e 'mirror -R /data /backup; quit' ftp.internal", dets: []string{"lftp-password"}},
		{name: "etcdctl --user", in: "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --user root:S3cretPw9 get / --prefix --keys-only\netcdctl --user=root:S3cretPw9 member list",
			want: "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --user root:<<P:S3cretPw9>> get / --prefix --keys-only\netcdctl --user=root:<<P:S3cretPw9>> member list", dets: []string{"etcdctl-password"}},
		{name: "etcdctl asks", in: "etcdctl --user root get /; etcdctl --user root: get /"},
		{name: "rabbitmqctl", in: "rabbitmqctl add_user admin S3cretPw9\nrabbitmqctl -n rabbit@mq-0 change_password admin 'S3cret Pw9'",
			want: "rabbitmqctl add_user admin <<P:S3cretPw9>>\nrabbitmqctl -n rabbit@mq-0 change_password admin '<<P:S3cret Pw9>>'", dets: []string{"rabbitmq-password"}},
		{name: "rabbitmqctl asks", in: "rabbitmqctl add_user admin; rabbitmqctl list_users; rabbitmqctl add_user admin \"$RABBITMQ_PASSWORD\""},
		{name: "grafana reset-admin-password", in: "grafana-cli admin reset-admin-password S3cretPw9\ngrafana cli --homepath /usr/share/grafana admin reset-admin-password S3cretPw9",
			want: "grafana-cli admin reset-admin-password <<P:S3cretPw9>>\ngrafana cli --homepath /usr/share/grafana admin reset-admin-password <<P:S3cretPw9>>", dets: []string{"grafana-admin-password"}},
		{name: "minio client", in: "mc alias set minio http://minio:9000 ACCESSKEY1 S3cretPw9secret\nmc config host add minio http://minio:9000 ACCESSKEY1 S3cretPw9secret\nmc admin user add minio ci S3cretPw9secret",
			want: "mc alias set minio http://minio:9000 ACCESSKEY1 <<P:S3cretPw9secret>>\nmc config host add minio http://minio:9000 ACCESSKEY1 <<P:S3cretPw9secret>>\nmc admin user add minio ci <<P:S3cretPw9secret>>", dets: []string{"minio-client-secret"}},
		{name: "minio client without a secret", in: "mc alias set minio http://minio:9000; mc alias list; mc admin user add minio ci \"$MINIO_PW\""},
		// The -p detectors skip a line whose every -p is followed by a reference, and only it.
		{name: "-p references", in: "mysql -uroot -p$(MYSQL_ROOT_PASSWORD) -h db; mysqladmin -p${PW} ping\nsshpass -p$(PW) ssh h"},
		{name: "-p references and a password", in: "mysql -p$(A) -e 'SELECT 1'; mysql -uroot -pS3cretPw9",
			want: "mysql -p$(A) -e 'SELECT 1'; mysql -uroot -p<<P:S3cretPw9>>", dets: []string{"mysql-password-flag"}},
		{name: "curl references", in: "curl -fsS -u \"$(USER):$(PASS)\" http://es:9200; curl -u elastic:${ELASTIC_PASSWORD} http://es:9200"},
		// A one-dash flag is a name unless it is a letter with its value joined.
		{name: "one-dash names", in: "Set-AWSCredential -AccessKey AKIAEXAMPLE -SecretKey wJalrXUtnFEMIK7MDENGbPxRfiCYzzzz\nConnect-Thing -ApiToken abcdefghij0123456789",
			want: "Set-AWSCredential -AccessKey AKIAEXAMPLE -SecretKey <<P:wJalrXUtnFEMIK7MDENGbPxRfiCYzzzz>>\nConnect-Thing -ApiToken <<P:abcdefghij0123456789>>"},
		{name: "camel-case names", in: "./server -dbPassword Sup3rS3cret! -port 8080 -apiKey 8f14e45fceea167a5a36dedd4bea2543 -password2 Xk9vQ2mLp",
			want: "./server -dbPassword <<P:Sup3rS3cret!>> -port 8080 -apiKey <<P:8f14e45fceea167a5a36dedd4bea2543>> -password2 <<P:Xk9vQ2mLp>>"},
		{name: "a joined value is no name", in: "7z a -pS3cretPw9 out.7z /data; tool -pSecretPw out.bin",
			want: "7z a -p<<P:S3cretPw9>> out.7z /data; tool -pSecretPw out.bin", dets: []string{"7zip-password"}},
		{name: "joined zip and cqlsh", in: "zip -Pxk9vQ2mLp a.zip f; cqlsh -u c -pxk9vQ2mLp h",
			want: "zip -P<<P:xk9vQ2mLp>> a.zip f; cqlsh -u c -p<<P:xk9vQ2mLp>> h", dets: []string{"zip-password", "cqlsh-password"}},
		{name: "a quoted password starting with a parenthesis", in: "htpasswd -bc /etc/nginx/.htpasswd admin '(Xk9vQ2mLp'",
			want: "htpasswd -bc /etc/nginx/.htpasswd admin '<<P:(Xk9vQ2mLp>>'", dets: []string{"htpasswd-password"}},
		{name: "usage placeholders", in: "ldapsearch -x -D cn=admin -w PASSWORD -b dc=x\nzip -P YOUR_PASSWORD -r archive.zip dir\nmc alias set ALIAS URL ACCESS_KEY SECRET_KEY\n7z x archive.7z -p{Password}"},
		{name: "prose", in: "Use zip -P to set a password. The ldapsearch -w option is insecure; rabbitmqctl add_user takes a user and a password. Run htpasswd -b first."},
	}
	checkDetectorCases(t, tests)
}
