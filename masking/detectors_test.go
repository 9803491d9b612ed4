package masking

import (
	"encoding/base64"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDetectors(t *testing.T) {
	jwt := testJWT()
	gh := ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA")
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
	pemB64 := base64.StdEncoding.EncodeToString([]byte(pem + "\n"))
	tests := []detectorCase{
		// jwt
		{name: "jwt", in: "Authorization header was " + jwt + " today",
			want: "Authorization header was <<P:" + jwt + ">> today", dets: []string{"jwt"}},
		{name: "jwt look-alike", in: "eyJmb28iOiJiYXIifQ.notbase64json.xxxx and eyJub3RhIGpvc2UgaGVhZGVyfQ.eyJzdWIiOiIxIn0.sig"},
		// pem
		{name: "pem private key", in: "key:\n" + pem + "\ndone", want: "key:\n<<P:" + pem + ">>\ndone", dets: []string{"pem-private-key"}},
		{name: "pem unterminated", in: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
			want: "<<P:-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC>>", dets: []string{"pem-private-key"}},
		{name: "pem certificate is public", in: "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----"},
		{name: "pem base64", in: "client-key-data: " + pemB64, want: "client-key-data: <<P:" + pemB64 + ">>", dets: []string{"pem-private-key-base64"}},
		{name: "base64 certificate", in: "certificate-authority-data: " + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----\n"))},
		// aws
		{name: "aws access key id", in: "id=AKIAQ3EGRJ7XW5LN2TBV region=eu-west-1", want: "id=<<P:AKIAQ3EGRJ7XW5LN2TBV>> region=eu-west-1", dets: []string{"aws-access-key-id"}},
		{name: "aws temporary key id", in: "ASIAY34FZKBOKMUTVV7A", want: "<<P:ASIAY34FZKBOKMUTVV7A>>", dets: []string{"aws-access-key-id"}},
		{name: "aws key id placeholder", in: "AKIAAAAAAAAAAAAAAAAA"},
		{name: "aws key id in a word", in: "XAKIAQ3EGRJ7XW5LN2TBV1"},
		{name: "aws secret access key", in: "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
			want: "aws_secret_access_key = <<P:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY>>\n", dets: []string{"aws-secret-access-key"}},
		{name: "40 characters without aws context", in: "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 merged"},
		// github
		{name: "github classic token", in: "token " + gh, want: "token <<P:" + gh + ">>", dets: []string{"github-token"}},
		{name: "github token with a bad checksum", in: "GH=gho_16C7e42F292c6912E7710c838347Ae178B4a", want: "GH=<<P:gho_16C7e42F292c6912E7710c838347Ae178B4a>>", dets: []string{"github-token"}},
		{name: "github documentation placeholder", in: "use ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx here"},
		{name: "github fine-grained token", in: "pat github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklm",
			want: "pat <<P:github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklm>>", dets: []string{"github-token"}},
		// gitlab
		{name: "gitlab token", in: "glpat-xY7kQ2mZx9LpV4nT8wB3", want: "<<P:glpat-xY7kQ2mZx9LpV4nT8wB3>>", dets: []string{"gitlab-token"}},
		{name: "gitlab word", in: "see glpat-documentation for details"},
		// slack
		{name: "slack bot token", in: "SLACK xoxb-2934756120-4827361934-AbCdEfGhIjKlMnOpQrStUvWx", want: "SLACK <<P:xoxb-2934756120-4827361934-AbCdEfGhIjKlMnOpQrStUvWx>>", dets: []string{"slack-token"}},
		{name: "slack webhook", in: "POST https://hooks.slack.com/services/T024BE7LD/B08ABCDEF12/zY8xW7vU6tS5rQ4pO3nM2lK1",
			want: "POST https://hooks.slack.com/services/<<P:T024BE7LD/B08ABCDEF12/zY8xW7vU6tS5rQ4pO3nM2lK1>>", dets: []string{"slack-webhook"}},
		{name: "slack docs link", in: "https://hooks.slack.com/services/"},
		// stripe, google, azure
		{name: "stripe live key", in: "sk_live_51HxYzAbCdEfGhIjKlMnOp", want: "<<P:sk_live_51HxYzAbCdEfGhIjKlMnOp>>", dets: []string{"stripe-key"}},
		{name: "stripe publishable key is public", in: "pk_live_51HxYzAbCdEfGhIjKlMnOp"},
		{name: "google api key", in: "key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI&q=x", want: "key=<<P:AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI>>&q=x", dets: []string{"google-api-key"}},
		{name: "azure connection string", in: "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
			want: "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=<<P:Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==>>;EndpointSuffix=core.windows.net", dets: []string{"azure-storage-key"}},
		// gcp
		{name: "gcp service account key", in: `{"type": "service_account", "private_key_id": "0a1b2c3d", "private_key": "x", "client_email": "a@b.iam.gserviceaccount.com"}`,
			want: `{"type": "<<P:service_account>>", "private_key_id": "<<P:0a1b2c3d>>", "private_key": "<<P:x>>", "client_email": "<<P:a@b.iam.gserviceaccount.com>>"}`, dets: []string{"gcp-service-account-key"}},
		{name: "service account without key", in: `{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}`},
		// urls
		{name: "url password", in: "DATABASE_URL=postgres://app:s3cr3t-pw@db:5432/app?sslmode=require", want: "DATABASE_URL=postgres://app:<<P:s3cr3t-pw>>@db:5432/app?sslmode=require", dets: []string{"url-password"}},
		{name: "url password with an at sign", in: "redis://:p@ss@cache:6379/0", want: "redis://:<<P:p@ss>>@cache:6379/0", dets: []string{"url-password"}},
		{name: "url without password", in: "see https://user@example.com:8443/path and https://example.com:443/x?y=z"},
		{name: "url with a variable password", in: "postgres://app:$(DB_PASSWORD)@db:5432/app"},
		// authorization
		{name: "bearer token", in: "curl -H 'Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543' https://api", want: "curl -H 'Authorization: Bearer <<P:8f14e45fceea167a5a36dedd4bea2543>>' https://api", dets: []string{"bearer-token"}},
		{name: "bearer prose", in: "the bearer token authentication scheme"},
		{name: "basic auth", in: "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", want: "Authorization: Basic <<P:YWxhZGRpbjpvcGVuc2VzYW1l>>", dets: []string{"basic-auth"}},
		{name: "basic prose", in: "basic authentication is disabled"},
		// docker config as text
		{name: "docker config text", in: `{"auths":{"r.example.com":{"auth":"dTpw","email":"a@b.c"}}}`, want: `{"auths":{"r.example.com":{"auth":"<<P:dTpw>>","email":"<<P:a@b.c>>"}}}`, dets: []string{"docker-config-auth"}},
		// field errors
		{name: "field error on a secret field", in: `spec.password: Invalid value: "hunter2": too short`, want: `spec.password: Invalid value: "<<P:hunter2>>": too short`, dets: []string{"field-error-value"}},
		{name: "field error on a plain field", in: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`},
		// keyword rules in text
		{name: "password assignment", in: "connecting with password=hunter2 user=bob", want: "connecting with password=<<P:hunter2>> user=bob", dets: []string{"password-assignment"}},
		{name: "connection string", in: "Server=db;Database=app;User Id=sa;Password=Pa55;Encrypt=true", want: "Server=db;Database=app;User Id=sa;Password=<<P:Pa55>>;Encrypt=true", dets: []string{"password-assignment"}},
		{name: "pwd in a connection string", in: "Driver={ODBC};Uid=sa;Pwd=Pa55w0rd;", want: "Driver={ODBC};Uid=sa;Pwd=<<P:Pa55w0rd>>;", dets: []string{"password-assignment"}},
		{name: "yaml password with spaces", in: "db:\n  password: correct horse battery\n  user: app\n", want: "db:\n  password: <<P:correct horse battery>>\n  user: app\n", dets: []string{"password-assignment"}},
		{name: "json password", in: `{"user":"app","password":"hunter2"}`, want: `{"user":"app","password":"<<P:hunter2>>"}`, dets: []string{"password-assignment"}},
		{name: "password flag", in: "mysql -u root --password hunter2 -e 'select 1'", want: "mysql -u root --password <<P:hunter2>> -e 'select 1'", dets: []string{"password-assignment"}},
		{name: "mysql joined password", in: "kubectl exec db-0 -- mysql -h 127.0.0.1 -uroot -pTopS3cret -e 'show databases'",
			want: "kubectl exec db-0 -- mysql -h 127.0.0.1 -uroot -p<<P:TopS3cret>> -e 'show databases'", dets: []string{"mysql-password-flag"}},
		{name: "mysql password after a tab", in: "mysql\t-uroot\t-pTopS3cret", want: "mysql\t-uroot\t-p<<P:TopS3cret>>", dets: []string{"mysql-password-flag"}},
		{name: "mysqldump quoted password", in: `mysqldump -u app -p"pa ss word" shop > dump.sql`, want: `mysqldump -u app -p"<<P:pa ss word>>" shop > dump.sql`, dets: []string{"mysql-password-flag"}},
		{name: "mysql prompts for the password", in: "mysql -u root -p shop; ls -pla /srv && mysql -p\nmysql -P3306 -h db -P 3306"},
		{name: "mysql password from a variable", in: `mysql -uroot -p$MYSQL_ROOT_PASSWORD -p"${PW}" -p$(cat /run/pw)`},
		{name: "mysql clients", in: "mysqlpump -pA1b2c3d4 && mariadb-import -pA1b2c3d4 x.csv; mysql_upgrade -pA1b2c3d4",
			want: "mysqlpump -p<<P:A1b2c3d4>> && mariadb-import -p<<P:A1b2c3d4>> x.csv; mysql_upgrade -p<<P:A1b2c3d4>>", dets: []string{"mysql-password-flag"}},
		{name: "mysql password on a continued line", in: "mysqldump -h db \\\n  -u backup \\\n  -pTopS3cret shop",
			want: "mysqldump -h db \\\n  -u backup \\\n  -p<<P:TopS3cret>> shop", dets: []string{"mysql-password-flag"}},
		{name: "mysql password in an escaped string", in: `msg="running mysql -uroot -p\"TopS3cret\""`,
			want: `msg="running mysql -uroot -p\"<<P:TopS3cret>>\""`, dets: []string{"mysql-password-flag"}},
		{name: "mysql password with quoted parts", in: `mysql -pab'cd'ef; mysql -p"gh\"ij"|grep x`,
			want: `mysql -p<<P:ab'cd'ef>>; mysql -p"<<P:gh\"ij>>"|grep x`, dets: []string{"mysql-password-flag"}},
		{name: "mysql as an argument", in: "docker run --name mysql -p3306:3306 mysql:8; ssh root@mysql -p2222"},
		{name: "mysql in a name", in: "pod mysql-0 is -pending; see mysql.log -pretty"},
		{name: "docker login password", in: "docker login -u ci-bot -p Tok3nValue9 registry.example.com",
			want: "docker login -u ci-bot -p <<P:Tok3nValue9>> registry.example.com", dets: []string{"password-flag-value"}},
		{name: "sshpass and mongosh passwords", in: "sshpass -p S3cretPw9 ssh app@host && mongosh -u admin -p 'M0ngo pw' --authenticationDatabase admin",
			want: "sshpass -p <<P:S3cretPw9>> ssh app@host && mongosh -u admin -p '<<P:M0ngo pw>>' --authenticationDatabase admin", dets: []string{"password-flag-value"}},
		{name: "redis.conf", in: "bind 0.0.0.0\nrequirepass foobared\n  masterauth \"pri mary\"\nport 6379\n",
			want: "bind 0.0.0.0\nrequirepass <<P:foobared>>\n  masterauth \"<<P:pri mary>>\"\nport 6379\n", dets: []string{"redis-password"}},
		{name: "redis-cli password", in: "redis-cli -h cache -a S3cretPw9 ping", want: "redis-cli -h cache -a <<P:S3cretPw9>> ping", dets: []string{"redis-password"}},
		{name: "redis directives that are not passwords", in: "# requirepass foobared\nrequirepass\nmasterauth ${REDIS_PASSWORD}\nredis-cli -a $PW ping\nthe requirepass setting is off"},
		{name: "maven settings", in: "<server>\n  <id>repo</id>\n  <username>ci</username>\n  <password>S3cretPw9</password>\n</server>",
			want: "<server>\n  <id>repo</id>\n  <username>ci</username>\n  <password><<P:S3cretPw9>></password>\n</server>", dets: []string{"xml-password-element"}},
		{name: "xml password on its own line", in: "<password>\n    S3cretPw9\n  </password>", want: "<password>\n    <<P:S3cretPw9>>\n  </password>", dets: []string{"xml-password-element"}},
		{name: "xml password references", in: "<password>${env.REPO_PASSWORD}</password><token></token><secret>\n</secret>"},
		{name: "docker login joined password", in: "docker login -pTok3nValue9 r.example.com && podman login -p=Tok3nValue9 quay.io",
			want: "docker login -p<<P:Tok3nValue9>> r.example.com && podman login -p=<<P:Tok3nValue9>> quay.io", dets: []string{"password-flag-value"}},
		{name: "mongosh prompts for the password", in: "mongosh -u admin -p --authenticationDatabase admin"},
		{name: "docker login from stdin and a port", in: "docker login -u ci-bot --password-stdin r.example.com; docker run -p 8080:80 nginx"},
		{name: "keytool passwords", in: "keytool -importkeystore -srckeystore a.p12 -srcstorepass S3cretPw9 -deststorepass 'An0ther pw' -keypass x9Pw",
			want: "keytool -importkeystore -srckeystore a.p12 -srcstorepass <<P:S3cretPw9>> -deststorepass '<<P:An0ther pw>>' -keypass <<P:x9Pw>>", dets: []string{"password-assignment"}},
		// .NET appSettings: the value of an <add> element whose key names a secret.
		{name: "appsettings secrets", in: `<appSettings><add key="Payments.ApiKey" value="Zk3qP9xW2vL8nR4t"/><add value='Hunter2pw' key='DbPassword' /></appSettings>`,
			want: `<appSettings><add key="Payments.ApiKey" value="<<P:Zk3qP9xW2vL8nR4t>>"/><add value='<<P:Hunter2pw>>' key='DbPassword' /></appSettings>`, dets: []string{"xml-add-key-value"}},
		{name: "appsettings over lines and in an escaped string", in: "<add\n   key=\"Smtp.Password\"\n   value=\"pa ss word\" />\nmsg=\"<add key=\\\"ClientSecret\\\" value=\\\"Zk3qP9xW2vL8nR4t\\\"/>\"",
			want: "<add\n   key=\"Smtp.Password\"\n   value=\"<<P:pa ss word>>\" />\nmsg=\"<add key=\\\"ClientSecret\\\" value=\\\"<<P:Zk3qP9xW2vL8nR4t>>\\\"/>\"", dets: []string{"xml-add-key-value"}},
		{name: "appsettings that are not secrets", in: `<add key="ApiKey" value="${API_KEY}"/><add key="DbPassword" value=""/><add key="ApiKeyHeaderName" value="X-Api-Key-Zk3qP9xW2"/>` +
			`<add key="Environment" value="Zk3qP9xW2vL8nR4t"/><add key="TokenLifetimeSeconds" value="3600"/><address key="password" value="Hunter2pw">`},
		// htpasswd: the password is its last argument after -b.
		{name: "htpasswd passwords", in: "htpasswd -b /etc/nginx/.htpasswd admin S3cretPw9 && htpasswd -Bbc -C 12 users admin 'pa ss' 2>/dev/null; /usr/bin/htpasswd -nb admin Pw0rd9 # for nginx",
			want: "htpasswd -b /etc/nginx/.htpasswd admin <<P:S3cretPw9>> && htpasswd -Bbc -C 12 users admin '<<P:pa ss>>' 2>/dev/null; /usr/bin/htpasswd -nb admin <<P:Pw0rd9>> # for nginx", dets: []string{"htpasswd-password"}},
		{name: "htpasswd with an empty user, in docker run and sh -c", in: `htpasswd -bnBC 10 "" S3cretPw9 | tr -d ':\n'; docker run --rm --entrypoint htpasswd httpd:2 -Bbn ci Pw0rd9 > auth; sh -c "htpasswd -nb ci \"Tok3n pw\""`,
			want: `htpasswd -bnBC 10 "" <<P:S3cretPw9>> | tr -d ':\n'; docker run --rm --entrypoint htpasswd httpd:2 -Bbn ci <<P:Pw0rd9>> > auth; sh -c "htpasswd -nb ci \"<<P:Tok3n pw>>\""`, dets: []string{"htpasswd-password"}},
		{name: "htpasswd on continued lines", in: "htpasswd -b \\\n  /etc/nginx/.htpasswd \\\n  admin S3cretPw9\nnext", want: "htpasswd -b \\\n  /etc/nginx/.htpasswd \\\n  admin <<P:S3cretPw9>>\nnext", dets: []string{"htpasswd-password"}},
		{name: "htpasswd file from a substitution", in: "htpasswd -b $(dirname $0)/users admin S3cretPw9", want: "htpasswd -b $(dirname $0)/users admin <<P:S3cretPw9>>", dets: []string{"htpasswd-password"}},
		{name: "htpasswd prompts or reads references", in: "htpasswd -c /etc/nginx/.htpasswd admin; ls -b x y z\nhtpasswd -b f u $PW && htpasswd -nb u \"${PW}\" ; htpasswd -nb u $(cat /run/pw) | htpasswd -nbi u\nhtpasswd -nb u \"$(cat \"$f\")\"\n" +
			"auth_basic_user_file /etc/nginx/.htpasswd; kubectl create secret generic auth --from-file=htpasswd -n ingress x y\nhtpasswd -nb admin 2>/dev/null"},
		// openssl: -k password and pass:password.
		{name: "openssl passwords", in: "openssl enc -aes-256-cbc -k S3cretPw9 -in a && openssl pkcs12 -export -passin 'pass:pa ss' -passout pass:Pw0rd9 --passin pass:\"Tok 3n\" -out c.p12",
			want: "openssl enc -aes-256-cbc -k <<P:S3cretPw9>> -in a && openssl pkcs12 -export -passin 'pass:<<P:pa ss>>' -passout pass:<<P:Pw0rd9>> --passin pass:\"<<P:Tok 3n>>\" -out c.p12", dets: []string{"openssl-password"}},
		{name: "openssl password sources", in: "openssl rsa -passin env:PW -passout file:/run/pw -pass fd:3 -passin stdin -pass pass:$PW -k \"${KEY}\" -kfile /run/k; curl -k https://example.com | openssl x509 -noout\ncurl -k https://example.com\n" +
			"openssl s_client -connect example.com:443 </dev/null | curl -k https://example.com # openssl enc -k"},
		// A password echoed into a command that reads it from standard input.
		{name: "password echoed into a login", in: "echo 'S3cretPw9' | docker login -u ci --password-stdin r.example.com; echo -n Pw0rd9 | sudo podman login --password-stdin quay.io\necho correct horse  battery|oras login --password-stdin r.example.com",
			want: "echo '<<P:S3cretPw9>>' | docker login -u ci --password-stdin r.example.com; echo -n <<P:Pw0rd9>> | sudo podman login --password-stdin quay.io\necho <<P:correct horse  battery>>|oras login --password-stdin r.example.com", dets: []string{"password-stdin-echo"}},
		{name: "password printed or given as a here-string", in: "printf '%s' S3cretPw9 | helm registry login r.example.com --password-stdin\noras login --password-stdin r.example.com <<< 'Pw0rd 9'\n<<<\"Tok3nValue9\" docker login --password-stdin",
			want: "printf '%s' <<P:S3cretPw9>> | helm registry login r.example.com --password-stdin\noras login --password-stdin r.example.com <<< '<<P:Pw0rd 9>>'\n<<<\"<<P:Tok3nValue9>>\" docker login --password-stdin", dets: []string{"password-stdin-echo"}},
		{name: "password from stdin that is not echoed", in: "echo \"$PW\" | docker login --password-stdin; echo ${{ secrets.PAT }} | docker login --password-stdin\necho $(cat /run/pw) | docker login --password-stdin\n" +
			"echo logging in; docker login --password-stdin < pw.txt\necho hi && docker login --password-stdin\necho hi || docker login --password-stdin\ncat pw | docker login --password-stdin <<< \"$PW\""},
		// rclone: key value pairs after config create, update or password.
		{name: "rclone config secrets", in: "rclone config create s3 s3 provider AWS secret_access_key wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY region eu-west-1 && rclone --config /tmp/r.conf config update nas pass 'pa ss' --obscure password2 S3cretPw9",
			want: "rclone config create s3 s3 provider AWS secret_access_key <<P:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY>> region eu-west-1 && rclone --config /tmp/r.conf config update nas pass '<<P:pa ss>>' --obscure password2 <<P:S3cretPw9>>", dets: []string{"rclone-config-secret"}},
		{name: "rclone b2 key and obscure", in: "rclone config create b2 b2 account 0012ab key K001Zq8xW2vL8nR4tQ9; rclone config create nas sftp host nas user u pass $(rclone obscure S3cretPw9)\n" +
			"rclone config password nas pass \"$(rclone obscure Pw0rd9)\" && rclone config update nas pass `rclone obscure Tok3n9`",
			want: "rclone config create b2 b2 account 0012ab key <<P:K001Zq8xW2vL8nR4tQ9>>; rclone config create nas sftp host nas user u pass $(rclone obscure <<P:S3cretPw9>>)\n" +
				"rclone config password nas pass \"$(rclone obscure <<P:Pw0rd9>>)\" && rclone config update nas pass `rclone obscure <<P:Tok3n9>>`", dets: []string{"rclone-config-secret"}},
		{name: "rclone without secrets", in: "rclone config create r s3 provider AWS env_auth true key_file /home/u/key pass $RCLONE_PASS; rclone copy obscure remote:pass; rclone config show nas pass word\nrclone config create r ftp host h; echo pass S3cretPw9"},
		{name: "token with entropy", in: "api_token=Zk3qP9xW2vL8nR4t", want: "api_token=<<P:Zk3qP9xW2vL8nR4t>>", dets: []string{"keyword-entropy"}},
		{name: "token without entropy", in: "token=aaaaaaaaaaaa"},
		{name: "query string token", in: "GET /callback?code=abc&access_token=Zk3qP9xW2vL8nR4t&state=1", want: "GET /callback?code=abc&access_token=<<P:Zk3qP9xW2vL8nR4t>>&state=1", dets: []string{"keyword-entropy"}},
		{name: "password reference", in: "password=${DB_PASSWORD} and password: $(PW) and password=******"},
		{name: "pwd is a directory", in: "PWD=/home/app"},
		{name: "words that contain keywords", in: "The secretary passed the keyboard; tokens were counted and passwords rotated."},
		// things that must stay
		{name: "uuid", in: "request c0a8e3f2-7b1d-4e5a-9c6f-2d8b0e4a1f37 done"},
		{name: "git sha", in: "image built from 9fceb02d0ae598e95dc970b74767f19372d61af8"},
		{name: "image digest", in: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
		{name: "base64 image", in: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="},
		{name: "plain url", in: "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"},
		{name: "timestamps", in: "2026-03-14T09:26:53.123456Z level=info msg=ok"},
	}
	checkDetectorCases(t, tests)
}

// detectorCase is a text and what Masker.Text makes of it.
type detectorCase struct {
	name string
	in   string
	want string   // with <<P:…>> markers; "" means unchanged
	dets []string // detectors expected in the stats
}

// checkDetectorCases masks each case's text, and the same text as a JSON string value, and
// requires the case's result.
func checkDetectorCases(t *testing.T, tests []detectorCase) {
	t.Helper()
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st := m.Text(nil, []byte(tt.in))
			want := tt.in
			if tt.want != "" {
				want = expand(tt.want)
			}
			assert.Equal(t, want, string(out))
			for _, d := range tt.dets {
				assert.Contains(t, st.Detectors, d)
			}
			if tt.want == "" {
				assert.Zero(t, st.Fields)
			}

			// The same text as a JSON string value is masked the same way.
			doc := appendQuoted([]byte(`{"kind":"Event","apiVersion":"v1","message":`), []byte(tt.in))
			doc = append(doc, '}')
			jout, _, err := m.JSON(nil, doc, Target{})
			require.NoError(t, err)
			jwant := appendQuoted([]byte(`{"kind":"Event","apiVersion":"v1","message":`), []byte(want))
			jwant = append(jwant, '}')
			assert.Equal(t, string(jwant), string(jout))
		})
	}
}

func TestGitHubChecksum(t *testing.T) {
	good := ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA")
	assert.True(t, githubChecksum([]byte(good)))
	bad := good[:len(good)-1] + "x"
	assert.False(t, githubChecksum([]byte(bad)))
	assert.False(t, githubChecksum([]byte("ghp_short")))
}

func TestClassifyKey(t *testing.T) {
	tests := map[string]keyClass{
		"password": keyPassword, "DB_PASSWORD": keyPassword, "dbPassword": keyPassword, "db-passwd": keyPassword,
		"Pwd": keyPassword, "--admin-password": keyPassword, "DB_PASS": keyPassword, "passwords": keyPassword,
		"spring.datasource.password": keyPassword, "ssh_passphrase": keyPassword,
		"token": keySecret, "GITHUB_TOKEN": keySecret, "accessToken": keySecret, "client_secret": keySecret,
		"API_KEY": keySecret, "apiKey": keySecret, "APIKey": keySecret, "tls.key": keySecret, "privateKey": keySecret,
		"credentials": keySecret, "auth": keySecret, "X-Amz-Signature": keySecret, "sig": keySecret, "Authorization": keySecret,
		"TOKEN2": keySecret, "SECRET_KEY_BASE": keySecret, "secretKeyBase": keySecret,
		"requirepass": keyPassword, "passcode": keyPassword, "masterauth": keySecret,
		"-storepass": keyPassword, "-srcstorepass": keyPassword, "-keypass": keyPassword, "-destkeypass": keyPassword,
		"base": keyPlain, "database": keyPlain, "codebase": keyPlain, "KEY_BASE_URL": keyPlain, "DATA_BASE": keyPlain,
		"key": keyPlain, "publicKey": keyPlain, "SORT_KEY": keyPlain, "secretName": keyPlain, "tokenExpirationSeconds": keyPlain,
		"passwordFile": keyPlain, "name": keyPlain, "monkey": keyPlain, "bypass": keyPlain, "keyboard": keyPlain,
		"": keyPlain, "___": keyPlain, "resourceVersion": keyPlain, "secretKeyRef": keyPlain,
		"checksum/secret": keyPlain, "checksum-secret": keyPlain, "secretChecksum": keyPlain, "token_sha256": keyPlain,
		"sha256/token": keyPlain, "hashicorp_vault_token": keySecret, "checksummed_password": keyPassword,
	}
	for k, want := range tests {
		assert.Equal(t, want, classifyKey([]byte(k)), "key %q", k)
	}
}

func TestKeywordRuleValues(t *testing.T) {
	for _, v := range []string{"", "true", "False", "$(DB_PASSWORD)", "${PW}", "$PW", "{{ .Values.pw }}", "<password>", "******", "xxxx", PlaceholderPrefix + "0123456789ab"} {
		assert.Equal(t, -1, keyMasks(keyPassword, []byte("password"), []byte(v)), "value %q", v)
	}
	assert.Equal(t, idPasswordAssignment, keyMasks(keyPassword, []byte("password"), []byte("abc")))
	assert.Equal(t, -1, keyMasks(keySecret, []byte("token"), []byte("abc")), "short values need no masking")
	assert.Equal(t, idKeywordEntropy, keyMasks(keySecret, []byte("token"), []byte("q8Zr2kLw9XvB4nTc")))
	assert.Equal(t, -1, keyMasks(keySecret, []byte("token"), []byte("aaaaaaaabbbbbbbb")), "low entropy")
	assert.Equal(t, -1, keyMasks(keyPassword, []byte("PWD"), []byte("/home/app")))
}

func TestEntropy(t *testing.T) {
	assert.Zero(t, entropy(nil))
	assert.Zero(t, entropy([]byte("aaaa")))
	assert.InDelta(t, 1.0, entropy([]byte("abab")), 1e-9)
	assert.InDelta(t, 4.0, entropy([]byte("0123456789abcdef")), 1e-9)
}

func TestAutomaton(t *testing.T) {
	a := newAutomaton(map[string][]int{"he": {0}, "she": {1}, "his": {2}, "hers": {3}})
	trig := make([]uint64, 1)
	assert.True(t, a.scan([]byte("uSHErs"), trig))
	assert.Equal(t, uint64(1<<0|1<<1|1<<3), trig[0])
	trig[0] = 0
	assert.False(t, a.scan([]byte("nothing to see"), trig))
	assert.Zero(t, trig[0])
	assert.True(t, strings.Contains("x", "x"))
}

// TestNoFalsePositives feeds text Kubernetes and its tools commonly produce that holds no
// secret; nothing may be masked.
func TestNoFalsePositives(t *testing.T) {
	m := newMasker(t, Config{})
	for _, s := range []string{
		"password: the password used to authenticate against the database",
		"The token: must be a valid JWT issued by the cluster",
		`Failed to pull image "registry.example.com/app:1.2": rpc error: code = Unknown desc = failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized`,
		`level=info msg="token refreshed" expires_in=3600 token_type=Bearer`,
		"secretName: tls-secret, secretKey: tls.key",
		`Secret "db-credentials" not found`,
		`MountVolume.SetUp failed for volume "kube-api-access-7xk2p" : object "default"/"kube-root-ca.crt" not registered`,
		"serviceAccountToken:\n  expirationSeconds: 3607\n  path: token\n",
		"authorization.k8s.io/decision: allow",
		"Authorization: Bearer <token>",
		"--token-auth-file=/etc/kubernetes/tokens.csv --service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--client-ca-file=/etc/kubernetes/pki/ca.crt --tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
		"key: app.kubernetes.io/name operator: In",
		"auth: enabled",
		"api_key: ${API_KEY}",
		"cache key=users:42:profile",
		"AWS_REGION=eu-west-1 AWS_ROLE_ARN=arn:aws:iam::123456789012:role/app",
		"https://github.com/kubernetes/kubernetes/blob/master/CHANGELOG/CHANGELOG-1.36.md",
		"Signature verification failed: signature: invalid",
		"sessionAffinity: None",
		"Readiness probe failed: Get \"http://10.0.0.12:8080/healthz\": dial tcp 10.0.0.12:8080: connect: connection refused",
	} {
		out, st := m.Text(nil, []byte(s))
		assert.Zero(t, st.Fields, "%q became %q", s, out)
	}
}

// TestDetectorRequires proves, from each expression's syntax, that every match of a detector
// contains the byte it requires: skipping texts without it never misses a secret.
func TestDetectorRequires(t *testing.T) {
	var contains func(re *syntax.Regexp, b rune) bool
	contains = func(re *syntax.Regexp, b rune) bool {
		switch re.Op {
		case syntax.OpLiteral:
			return slices.Contains(re.Rune, b) && re.Flags&syntax.FoldCase == 0
		case syntax.OpCapture, syntax.OpPlus:
			return contains(re.Sub[0], b)
		case syntax.OpRepeat:
			return re.Min > 0 && contains(re.Sub[0], b)
		case syntax.OpConcat:
			return slices.ContainsFunc(re.Sub, func(s *syntax.Regexp) bool { return contains(s, b) })
		case syntax.OpAlternate:
			return !slices.ContainsFunc(re.Sub, func(s *syntax.Regexp) bool { return !contains(s, b) })
		}
		return false
	}
	n := 0
	for _, d := range builtinDetectors {
		if d.requires == 0 {
			continue
		}
		n++
		re, err := syntax.Parse(d.re.String(), syntax.Perl)
		require.NoError(t, err)
		assert.True(t, contains(re, rune(d.requires)), "detector %d: every match contains %q", d.id, d.requires)
	}
	assert.NotZero(t, n)
	assert.False(t, contains(mustParse(t, `a(?:@)?b`), '@'), "an optional @ is not required")
	assert.False(t, contains(mustParse(t, `a(?:@|c)b`), '@'), "an alternative without @ is not required")
}

func mustParse(t *testing.T, expr string) *syntax.Regexp {
	re, err := syntax.Parse(expr, syntax.Perl)
	require.NoError(t, err)
	return re
}

// TestClassifyWordPrefilter checks classifyWord, which reads only the words ending with its last byte,
// against the tables read in full, over every word of the tables, their prefixes, and each of
// them with every byte appended and with a word before it.
func TestClassifyWordPrefilter(t *testing.T) {
	var words []string
	for _, list := range [][]string{passwordSuffixes, passwordWords, secretSuffixes, notSecretKeys, {"sig", "key", "base", "key_base", "", "x"}} {
		for _, s := range list {
			for i := 0; i <= len(s); i++ {
				words = append(words, s[:i], "my"+s[:i], s[i:])
				for c := 0; c < 256; c++ {
					words = append(words, s[:i]+string(rune(c))[:1], s+string([]byte{byte(c)}))
				}
			}
		}
	}
	nonPlain := 0
	for _, w := range words {
		for _, prev := range []string{"", "api", "public", "db"} {
			want := classifyTables([]byte(w), []byte(prev))
			require.Equal(t, want, classifyWord([]byte(w), []byte(prev)), "word %q after %q", w, prev)
			if want != keyPlain {
				nonPlain++
			}
		}
	}
	require.Greater(t, nonPlain, 300, "the words include secret ones: the test can fail")
}

// TestKeyCache classifies keys through a cache, in an order that brings each back after others
// took its slot (keys that hash alike differ only in bytes the hash does not read), and keys too
// long to be cached: every answer is classifyKey's.
func TestKeyCache(t *testing.T) {
	keys := []string{"", "name", "mode", "password", "passxord", "db_password", "db_passwOrd", "api_key", "public_key",
		"apiToken", "apiTokan", "tls.key", "tls.kex", "x", "checksum/secret", "data", strings.Repeat("a", 31) + "token",
		strings.Repeat("b", 40) + "_password", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEX"}
	var kc keyCache
	secret := 0
	for round := range 5 {
		for i := range keys {
			k := []byte(keys[(i*7+round)%len(keys)])
			want := classifyKey(k)
			require.Equal(t, want, kc.classify(k), "key %q", k)
			if want != keyPlain {
				secret++
			}
		}
	}
	require.Positive(t, secret, "secret keys are among them: the test can fail")
}
