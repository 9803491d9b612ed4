package schema

// SingleServer returns o for a test on one server without ClickHouse Keeper (singleServer).
func SingleServer(o Options) Options {
	o.singleServer = true
	return o
}

// ClusterStatements exposes clusterStatements to the tests.
var ClusterStatements = clusterStatements
