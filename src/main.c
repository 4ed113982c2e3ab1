/* main.c: placeholder, replaced below. */
#include <stdio.h>
int main(void);
int
main(void)
{
	return 0;
}
