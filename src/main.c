/*
 * main.c -- command line: run the gateway, check a configuration (-n),
 * print the version or help, or run `tracestitch diagnose`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sampler.h"
#include "diagnose.h"
#include "log.h"
#include "server.h"
#include "ts_config.h"

extern char **environ;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: tracestitch [-n] -c FILE\n"
	    "       tracestitch diagnose --origin ORIGIN --url URL "
	    "[--propagators LIST] [--method M]\n"
	    "       tracestitch --version | --help\n"
	    "\n"
	    "  -c, --config FILE   configuration file (YAML)\n"
	    "  -n, --check         check the configuration and exit 0 or 1\n"
	    "  -v, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n"
	    "\n"
	    "Environment overrides (DD_SERVICE, DD_ENV, DD_TRACE_AGENT_URL, "
	    "DD_TRACE_PROPAGATION_STYLE, ...)\nwin over the file; see "
	    "docs/configuration.md.\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'n'},
		{"version", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct config *cfg = NULL;
	char *errors = NULL, *cause = NULL;
	bool check = false;
	int ch;

	log_init(LOG_LEVEL_INFO, "tracestitch");
	if (argc > 1 && strcmp(argv[1], "diagnose") == 0)
		return diagnose_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:nvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			printf("tracestitch %s\n", TS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || path == NULL) {
		usage(stderr);
		return 2;
	}
	config_set_rules_check(sampler_rules_check);
	if (config_load(path, environ, &cfg, &errors) != 0) {
		fputs(errors != NULL ? errors : "configuration error\n",
		    stderr);
		free(errors);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		config_unref(cfg);
		return 0;
	}
	log_set_level((enum log_level)cfg->logging.level);
	if (log_access_open(cfg->logging.access_log, &cause) != 0) {
		log_warnx("access log: %s", cause);
		free(cause);
		config_unref(cfg);
		return 1;
	}
	return server_main(cfg);
}
