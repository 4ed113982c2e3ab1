/* test_upstream.c: not written yet; skipped. */
int main(void);
int
main(void)
{
	return 77;
}
