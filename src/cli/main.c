/*
 * main.c -- command line: run the gateway, check a configuration (-n:
 * the server's own preparation without binding, server_check), print the
 * version or help, or run `tracestitch diagnose`.
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

/* Without -c (issue 14 item 8): sysconfdir of the build (meson). */
#define MAIN_DEFAULT_CONFIG TS_SYSCONFDIR "/tracestitch/tracestitch.yaml"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: tracestitch [-n | -T] [-c FILE]\n"
	    "       tracestitch diagnose --origin ORIGIN --url URL "
	    "[--propagators LIST] [--method M]\n"
	    "       tracestitch --version | --help\n"
	    "\n"
	    "  -c, --config FILE   configuration file (YAML), default\n"
	    "                      " MAIN_DEFAULT_CONFIG "\n"
	    "  -n, --check         check the configuration as the server would, "
	    "without\n"
	    "                      listening, and exit 0 or 1\n"
	    "  -T, --dump          check as -n, then print the effective "
	    "configuration\n"
	    "                      (file, environment, defaults; secrets "
	    "redacted)\n"
	    "  -v, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n"
	    "\n"
	    "Environment overrides (DD_SERVICE, DD_ENV, DD_TRACE_AGENT_URL, "
	    "DD_TRACE_PROPAGATION_STYLE, ...)\nwin over the file; see "
	    "docs/configuration.md.\n");
}

/* Each line of text as a warning of the log. */
static void
main_log_lines(const char *text)
{
	const char *p, *nl;

	for (p = text; *p != '\0'; p = *nl != '\0' ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		if (nl > p)
			log_warnx("%.*s", (int)(nl - p), p);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'n'},
		{"dump", no_argument, NULL, 'T'},
		{"version", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct config *cfg = NULL;
	struct config_errors errs;
	char *errors = NULL;
	bool check = false, dump = false;
	int ch, rc;

	log_init(LOG_LEVEL_INFO, "tracestitch");
	if (argc > 1 && strcmp(argv[1], "diagnose") == 0)
		return diagnose_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:nTvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'T':
			dump = check = true;
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
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (path == NULL)
		path = MAIN_DEFAULT_CONFIG;
	config_set_rules_check(sampler_rules_check);
	if (config_load(path, environ, &cfg, &errors) != 0) {
		fputs(errors != NULL ? errors : "configuration error\n",
		    stderr);
		free(errors);
		return 1;
	}
	log_set_level((enum log_level)cfg->logging.level);
	/* Once per start: a reload reads the same environment. */
	if (cfg->env_warnings != NULL) {
		if (check)
			fputs(cfg->env_warnings, stderr);
		else
			main_log_lines(cfg->env_warnings);
	}
	if (check) {
		/*
		 * The server's own preparation, minus binding: what it would
		 * refuse, all of it, as "file:line:col: key.path: message".
		 */
		config_errors_init(&errs, cfg);
		rc = server_check(cfg, &errs);
		if (errs.warnings != NULL)
			fputs(errs.warnings, stderr);
		if (rc != 0)
			fputs(errs.errors, stderr);
		else if (dump)
			config_dump(cfg, stdout);
		else
			printf("configuration OK\n");
		config_errors_clear(&errs);
		config_unref(cfg);
		return rc != 0 ? 1 : 0;
	}
	return server_main(cfg);
}
